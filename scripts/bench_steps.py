#!/usr/bin/env python3
"""Where one record's time goes in-process: each step of a single-record /invocations request, per call.

    .venv/bin/python scripts/bench_steps.py --model-dir DIR [--records 2000] [--repeats 15]

Distinct records of the real dataset as bench_serve.py finds it, else synthetic ones (bench_serve.py's copies
of the year shifted by 53 weeks at a time), each step timed over all of them and the best of ``--repeats``
passes kept (this machine's speed drifts; the best pass is the one least disturbed). Steps: decode the JSON
body, parse and validate, features, model (the tree walk for one row), encode the answer; then the whole
request (``scoring.invoke``, cache off) and, for scale, XGBoost's ``inplace_predict`` on the same rows. Then
the model engines side by side per call, on blocks of 1 to 1,000 of the same records (``ENGINE_ROWS``): the
tree walk, the leaf masks and XGBoost, the measurements behind ``model.Predictor``'s fixed choice between
them. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import dataset, distinct_records, json_bodies, read_rows  # noqa: E402

ENGINE_ROWS = (1, 2, 8, 32, 256, 1000)


def best_per_call(step: Callable, inputs: Sequence, repeats: int) -> float:
    """Microseconds per call, best pass of ``repeats`` over all ``inputs``."""
    passes = timeit.repeat(lambda: [step(x) for x in inputs], number=1, repeat=repeats)
    return min(passes) / len(inputs) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        data = dataset(Path(tmp))  # the real dataset, else synthetic records (and it says so)
        print_steps(args, data)
    return 0


def print_steps(args: argparse.Namespace, data: Path) -> None:
    from scl_delay.artifact import load_model
    from scl_delay.codec import decode_records, negotiate
    from scl_delay.features import build_features
    from scl_delay.malloc_tuning import keep_freed_memory
    from scl_delay.model import predict_proba
    from scl_delay.schema import parse_columns
    from scl_delay.scoring import Scorer, invoke, parse_options
    from scl_delay.settings import ServeSettings

    keep_freed_memory()  # as gunicorn.conf.py has it for the server
    model = load_model(args.model_dir)
    schema, predictor = model.input_schema, model.predictor
    scorer = Scorer(model, 0)
    options = parse_options({}, None, ServeSettings.from_env({}))
    bodies = [b.encode() for b in json_bodies(distinct_records(read_rows(data, None)), args.records)]
    records = [decode_records(b, "application/json", scorer.fields) for b in bodies]
    columns = [parse_columns(r.columns, 1, schema)[0] for r in records]
    matrices = [build_features(c, model.spec) for c in columns]
    answers = [scorer.score(r, options) for r in records]
    encoder = negotiate(None)
    steps = [
        ("decode the JSON body", lambda b: decode_records(b, "application/json", scorer.fields), bodies),
        ("parse and validate the record", lambda r: parse_columns(r.columns, 1, schema), records),
        ("features", lambda c: build_features(c, model.spec), columns),
        ("model (tree walk, one row)", predictor.predict_proba, matrices),
        ("encode the answer", encoder.encode, answers),
        (
            "whole request (`scoring.invoke`, cache off)",
            lambda b: invoke(scorer, b, None, None, options),
            bodies,
        ),
        (
            "for scale: XGBoost `inplace_predict`, one row",
            lambda X: predict_proba(predictor.booster, X, predictor.iteration_range),
            matrices[: max(len(matrices) // 10, 1)],
        ),
    ]
    trees = len(predictor.walk.roots) - 1 if predictor.walk else "?"
    print(
        f"\n{args.records:,} distinct records of {data.name}; best of {args.repeats} passes; {trees} trees\n"
    )
    print("| step | µs per record |")
    print("|---|---:|")
    for name, step, inputs in steps:
        print(f"| {name} | {best_per_call(step, inputs, args.repeats):.1f} |")
    print_engines(predictor, np.concatenate(matrices), args.repeats)


def print_engines(predictor, X: np.ndarray, repeats: int) -> None:
    """µs per call of each engine on blocks of distinct rows of ``X`` (a block size is skipped when ``X`` has
    fewer rows); an engine the model turned off shows as "off"."""
    from scl_delay.model import predict_proba

    engines = {
        "tree walk": predictor.walk and predictor.walk.predict_proba,
        "leaf masks": predictor.masks and predictor.masks.predict_proba,
        "XGBoost `inplace_predict`": lambda rows: predict_proba(
            predictor.booster, rows, predictor.iteration_range
        ),
    }
    print("\n| rows per call | " + " | ".join(engines) + " |")
    print("|---:|" + "---:|" * len(engines))
    for n in (n for n in ENGINE_ROWS if n <= len(X)):
        blocks = [X[i : i + n] for i in range(0, len(X) - n + 1, n)][: max(200 // n, 2)]
        cells = [f"{best_per_call(f, blocks, repeats):,.0f} µs" if f else "off" for f in engines.values()]
        print(f"| {n:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
