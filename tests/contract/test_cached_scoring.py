"""The prediction cache never changes an answer: the Scorer with it equals the Scorer without it, record
for record, whether the record comes alone, in a small batch or repeated (the keys that tell 1 from "1" are
tested in tests/unit/test_prediction_cache.py). In-process on the artifact `train` wrote (no server: the
cache lives in the Scorer)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from scl_delay.artifact import load_model
from scl_delay.codec import Records
from scl_delay.prediction_cache import MAX_CACHED_RECORDS
from scl_delay.scoring import Options, Scorer

OPTIONS = Options(outputs=("probability", "decision"))


@pytest.fixture(scope="module")
def loaded(model_dir: Path):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def records(loaded, synthetic_csv) -> list[dict]:
    fields = loaded.input_schema.fields
    with open(synthetic_csv, encoding="utf-8", newline="") as f:
        return [{k: row[k] for k in fields} for row, _ in zip(csv.DictReader(f), range(400))]


def score(scorer: Scorer, records: list[dict], fields) -> tuple[list, list]:
    """(probabilities, decisions) of ``records`` through ``scorer``, as a request of that many records."""
    columns = {f: [r[f] for r in records] for f in fields}
    answers = scorer.score(Records(columns, len(records), single=len(records) == 1), OPTIONS)
    assert not answers.errors
    return answers.probabilities, answers.decisions


def test_cached_answers_equal_uncached_ones_alone_in_small_batches_and_repeated(loaded, records, monkeypatch):
    fields = loaded.input_schema.fields
    cold, cached = Scorer(loaded, 0), Scorer(loaded, 100)  # smaller than the traffic: evictions happen
    expected = score(cold, records, fields)
    for round_ in ("first", "repeated"):
        singles = [score(cached, [r], fields) for r in records]
        assert [p[0] for p, _ in singles] == expected[0], round_
        assert [d[0] for _, d in singles] == expected[1], round_
        for start in range(0, len(records), MAX_CACHED_RECORDS):
            chunk = records[start : start + MAX_CACHED_RECORDS]
            got = score(cached, chunk, fields)
            assert got == (expected[0][start : start + len(chunk)], expected[1][start : start + len(chunk)])
        assert len(cached.cache) == 100  # bounded, and in use
    monkeypatch.setattr(loaded.predictor, "predict_proba", lambda X: pytest.fail("the model was asked"))
    assert score(cached, records[-1:], fields) == ([expected[0][-1]], [expected[1][-1]])


def test_a_batch_too_large_for_the_cache_neither_reads_nor_fills_it(loaded, records):
    fields = loaded.input_schema.fields
    cached = Scorer(loaded, 1000)
    batch = records[: MAX_CACHED_RECORDS + 1]
    score(cached, batch, fields)
    assert len(cached.cache) == 0
    score(cached, batch[:1], fields)
    assert len(cached.cache) == 1
