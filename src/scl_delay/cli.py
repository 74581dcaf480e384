"""Command-line front ends for the top-level scripts: argv -> settings -> one package call -> exit code."""

from __future__ import annotations

import argparse
import dataclasses
import signal
from pathlib import Path

from .errors import InputError
from .failure import TrainingInterrupted, fail, raise_on_sigterm, write_failure
from .hyperparameters import parse_overrides
from .settings import TrainSettings


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train the SCL delay model. With no flags, follows SageMaker's /opt/ml "
        "layout under $OPT_ML_DIR (default /opt/ml); flags override single paths for local runs.",
    )
    parser.add_argument("--data", type=Path, help="training CSV file or folder (channel 'training')")
    parser.add_argument("--validation", type=Path, help="optional validation CSV file or folder")
    parser.add_argument("--model-dir", type=Path, help="where the artifact goes")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="where the failure file and data/ (data quality) go; "
        "default: output/ beside --model-dir when that is given",
    )
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameter override, as SageMaker would pass it (repeatable)",
    )
    args = parser.parse_args(argv)
    settings = TrainSettings.from_env()
    output_dir = args.output_dir or (args.model_dir.parent / "output" if args.model_dir else None)
    changes = {
        "training_channel": args.data,
        "validation_channel": args.validation,
        "model_dir": args.model_dir,
        "output_dir": output_dir,
        "output_data_dir": output_dir / "data" if output_dir else None,
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in changes.items() if v is not None})
    try:
        overrides = parse_overrides(args.hp)
    except InputError as e:
        write_failure(settings, e)
        parser.error(str(e))
    signal.signal(signal.SIGTERM, raise_on_sigterm)  # before the ~2 s of imports below, not after
    try:
        from .training import main
    except TrainingInterrupted as e:
        return fail(settings, e)
    return main(settings, overrides)
