"""An SCL-shaped synthetic data set with a learnable delay signal, for demos and tests.

Same columns, order and formats as ``dataset_SCL.csv``; realistic airlines, destinations and 2017
dates; the delay probability rises with the evening peak, July and December, high season, some
airlines and long-haul destinations, so a model has something to find.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from . import schema as s
from .features import calendar, high_season

# (OPERA, Emp code, share of flights, delay log-odds, flies domestic)
AIRLINES = [
    ("Grupo LATAM", "LAN", 0.60, 0.0, True),
    ("Sky Airline", "SKU", 0.21, 0.1, True),
    ("Aerolineas Argentinas", "ARG", 0.03, 0.3, False),
    ("Copa Air", "CMP", 0.027, -0.2, False),
    ("Latin American Wings", "LAW", 0.025, 1.2, True),
    ("Avianca", "AVA", 0.017, 0.2, False),
    ("JetSmart SPA", "JAT", 0.016, 0.5, True),
    ("Gol Trans", "GLO", 0.012, 0.6, False),
    ("American Airlines", "AAL", 0.011, -0.2, False),
    ("Air Canada", "ACA", 0.008, 0.4, False),
    ("Iberia", "IBE", 0.006, -0.1, False),
    ("Delta Air", "DAL", 0.006, -0.3, False),
    ("Air France", "AFR", 0.005, 0.0, False),
    ("Aeromexico", "AMX", 0.005, 0.1, False),
    ("United Airlines", "UAL", 0.005, 0.0, False),
    ("K.L.M.", "KLM", 0.004, 0.0, False),
    ("Qantas Airways", "QFA", 0.003, 0.4, False),
    ("Austral", "AUT", 0.001, 0.3, False),
]
DOMESTIC = [
    ("SCFA", "Antofagasta"),
    ("SCCF", "Calama"),
    ("SCIE", "Concepcion"),
    ("SCTE", "Puerto Montt"),
    ("SCDA", "Iquique"),
    ("SCAR", "Arica"),
    ("SCCI", "Punta Arenas"),
    ("SCSE", "La Serena"),
    ("SCTC", "Temuco"),
    ("SCVD", "Valdivia"),
    ("SCBA", "Balmaceda"),
    ("SCAT", "Copiapo"),
]
INTERNATIONAL = [
    ("SAEZ", "Buenos Aires"),
    ("SABE", "Buenos Aires"),
    ("SBGR", "Sao Paulo"),
    ("SPJC", "Lima"),
    ("SKBO", "Bogota"),
    ("MPTO", "Ciudad de Panama"),
    ("KMIA", "Miami"),
    ("KJFK", "Nueva York"),
    ("KDFW", "Dallas"),
    ("KATL", "Atlanta"),
    ("CYYZ", "Toronto"),
    ("LEMD", "Madrid"),
    ("LFPG", "Paris"),
    ("MMMX", "Ciudad de Mexico"),
    ("SUMU", "Montevideo"),
    ("SAME", "Mendoza"),
    ("SBGL", "Rio de Janeiro"),
    ("YSSY", "Sydney"),
    ("SEGU", "Guayaquil"),
    ("SLLP", "La Paz"),
]
LONG_HAUL = {"KJFK", "KDFW", "KATL", "CYYZ", "LEMD", "LFPG", "YSSY", "KMIA"}
WEEKDAYS_ES = np.array(["Lunes", "Martes", "Miercoles", "Jueves", "Viernes", "Sabado", "Domingo"])
HOUR_WEIGHTS = np.array([3, 2, 1, 1, 1, 3, 6, 8, 8, 7, 6, 6, 6, 6, 6, 6, 6, 7, 8, 8, 7, 6, 5, 4], dtype=float)


def generate(rows: int = 20_000, seed: int = 7) -> pd.DataFrame:
    """A DataFrame with the 18 SCL columns, as strings, in the original order."""
    rng = np.random.default_rng(seed)
    names, codes, shares, effects, domestic = map(np.array, zip(*AIRLINES))
    airline = rng.choice(len(AIRLINES), size=rows, p=shares.astype(float) / shares.astype(float).sum())
    international = ~domestic[airline].astype(bool) | (rng.random(rows) < 0.25)
    dom_i, intl_i = rng.integers(len(DOMESTIC), size=rows), rng.integers(len(INTERNATIONAL), size=rows)
    dest_code = np.where(
        international,
        np.array([c for c, _ in INTERNATIONAL])[intl_i],
        np.array([c for c, _ in DOMESTIC])[dom_i],
    )
    dest_city = np.where(
        international,
        np.array([n for _, n in INTERNATIONAL])[intl_i],
        np.array([n for _, n in DOMESTIC])[dom_i],
    )
    day = rng.integers(365, size=rows)
    minute = (
        rng.choice(24, size=rows, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum()) * 60 + rng.choice(12, size=rows) * 5
    )
    scheduled = np.datetime64("2017-01-01T00:00:00") + (day * 1440 + minute).astype("timedelta64[m]")
    cal = calendar(scheduled.astype("datetime64[s]"))
    log_odds = (
        -2.0
        + effects[airline].astype(float)
        + 0.5 * international
        + 0.4 * np.isin(dest_code, list(LONG_HAUL))
        + 0.6 * np.isin(cal["month"], (7, 12))
        + 0.4 * high_season(cal["month"], cal["day_of_month"])
        + 0.7 * ((cal["hour"] >= 17) & (cal["hour"] <= 21))
        - 0.5 * (cal["hour"] < 7)
        + 0.2 * (cal["weekday"] == 4)
    )
    delayed = rng.random(rows) < 1 / (1 + np.exp(-(1.8 * log_odds + 1.4)))
    delay_min = np.where(delayed, rng.integers(16, 150, size=rows), rng.integers(-8, 16, size=rows))
    operated = scheduled + delay_min.astype("timedelta64[m]")
    return _to_frame(
        scheduled, operated, names[airline], codes[airline], international, dest_code, dest_city, rng
    )


def _to_frame(scheduled, operated, airline, emp, international, dest_code, dest_city, rng) -> pd.DataFrame:
    op = calendar(operated.astype("datetime64[s]"))
    flight_no = rng.integers(10, 9999, size=len(airline)).astype(str)
    alnum = rng.random(len(airline)) < 0.01  # a few alphanumeric flight numbers, as in the real file
    flight_no = np.where(alnum, np.char.add(flight_no, "A"), flight_no)
    text = {
        s.FECHA_I: np.datetime_as_string(scheduled, unit="s"),
        s.VLO_I: flight_no,
        s.ORI_I: "SCEL",
        s.DES_I: dest_code,
        s.EMP_I: emp,
        s.FECHA_O: np.datetime_as_string(operated, unit="s"),
        s.VLO_O: flight_no,
        s.ORI_O: "SCEL",
        s.DES_O: dest_code,
        s.EMP_O: emp,
        s.DIA: op["day_of_month"].astype(str),
        s.MES: op["month"].astype(str),
        s.ANO: operated.astype("datetime64[Y]").astype(str),
        s.DIANOM: WEEKDAYS_ES[op["weekday"]],
        s.TIPOVUELO: np.where(international, "I", "N"),
        s.OPERA: airline,
        s.SIGLAORI: "Santiago",
        s.SIGLADES: dest_city,
    }
    frame = pd.DataFrame({col: text[col] for col in s.SCL_COLUMNS})
    for col in (s.FECHA_I, s.FECHA_O):
        frame[col] = frame[col].str.replace("T", " ", regex=False)
    return frame.sort_values(s.FECHA_I, kind="stable").reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write an SCL-shaped synthetic flights CSV.")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    generate(args.rows, args.seed).to_csv(args.out, index=False)
    print(f"wrote {args.rows} synthetic flights to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
