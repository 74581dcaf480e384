"""Where the real SCL dataset is, found the same way by `make test`, every benchmark and both demos:
``SCL_DATASET`` when set (it must name a file), else ``../shared/data/dataset_SCL.csv`` beside the checkout.
It is read in place, never copied into the repository. A caller that then uses synthetic data says so.

    python -m local_aws.real_dataset    # prints the path, exit 0; or why there is none on stderr, exit 1
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

DATASET_ENV = "SCL_DATASET"
BESIDE_CHECKOUT = Path(__file__).resolve().parents[3] / "shared" / "data" / "dataset_SCL.csv"


class DatasetNotFoundError(Exception):
    """SCL_DATASET names something that is not a file."""


def find_real_dataset(env: Mapping[str, str] = os.environ) -> Path | None:
    """The real dataset's path, or None when SCL_DATASET is unset and nothing lies beside the checkout."""
    named = env.get(DATASET_ENV, "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise DatasetNotFoundError(f"{DATASET_ENV}={named!r} is not a file")
        return path.resolve()
    return BESIDE_CHECKOUT if BESIDE_CHECKOUT.is_file() else None


def why_absent() -> str:
    return f"{DATASET_ENV} is not set and {BESIDE_CHECKOUT} does not exist"


def main() -> int:
    try:
        path = find_real_dataset()
    except DatasetNotFoundError as e:
        print(e, file=sys.stderr)
        return 1
    if path is None:
        print(why_absent(), file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
