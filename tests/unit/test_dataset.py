"""Reading a training channel: exact line numbers, bad rows counted (not fatal), marker files skipped."""

from datetime import datetime, timedelta

import pytest

from scl_delay.dataset import load_channel
from scl_delay.errors import DatasetError
from scl_delay.synthetic import generate

HEADER = "Fecha-I,Vlo-I,Fecha-O,OPERA,TIPOVUELO,Des-I"


def row(i: int, late: bool = False) -> str:
    """The i-th distinct flight: scheduled i minutes after 2017-01-01 00:00, 20 (late) or 1 minute late."""
    scheduled = datetime(2017, 1, 1) + timedelta(minutes=i)
    operated = scheduled + timedelta(minutes=20 if late else 1)
    return f"{scheduled:%Y-%m-%d %H:%M:%S},226,{operated:%Y-%m-%d %H:%M:%S},Grupo LATAM,I,KMIA"


def test_line_numbers_count_blank_lines_and_quoted_newlines(tmp_path):
    text = "\n".join(
        [HEADER, row(0), "", row(1).replace(",226,", ',"22\n6",'), row(2).replace("I,KMIA", "X,KMIA")]
    )
    (tmp_path / "f.csv").write_text(text + "\n")
    flights = load_channel(tmp_path / "f.csv", max_invalid_fraction=0.5)
    assert [str(p) for p in flights.problems] == [
        "f.csv line 6, column TIPOVUELO: unknown value 'X'; expected one of 'I', 'N'"
    ]
    assert (flights.rows_read, len(flights.label)) == (3, 2)


def test_a_row_with_the_wrong_number_of_fields_is_counted_not_fatal(tmp_path):
    rows = [row(i, late=i % 3 == 0) for i in range(200)]
    rows[10] += ",extra"
    (tmp_path / "f.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    flights = load_channel(tmp_path / "f.csv", max_invalid_fraction=0.01)
    assert [str(p) for p in flights.problems] == ["f.csv line 12: expected 6 fields as in the header, got 7"]
    assert flights.quality()["unusable_rows"] == 1 and len(flights.label) == 199
    with pytest.raises(
        DatasetError, match=r"^1 of 200 rows unusable .* the first: f.csv line 12: expected 6"
    ):
        load_channel(tmp_path / "f.csv", max_invalid_fraction=0.0)


def test_marker_and_hidden_files_in_a_channel_folder_are_skipped(tmp_path):
    generate(300, seed=1).to_csv(tmp_path / "part-0.csv", index=False)
    for name in ("_SUCCESS", "_manifest.json", ".DS_Store"):
        (tmp_path / name).write_bytes(b"\x00not csv")
    flights = load_channel(tmp_path, max_invalid_fraction=0.01)
    assert flights.files == ["part-0.csv"] and len(flights.label) == 300


def test_a_broken_quote_names_the_file_and_line(tmp_path):
    (tmp_path / "f.csv").write_text("\n".join([HEADER, row(0), row(1).replace(",226,", ',"226,')]) + "\n")
    with pytest.raises(DatasetError, match=r"^f.csv line \d+: not a readable CSV"):
        load_channel(tmp_path / "f.csv", max_invalid_fraction=0.5)
