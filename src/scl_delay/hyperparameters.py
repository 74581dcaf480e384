"""The declared hyperparameters: type, range and default, validated by pydantic.

SageMaker delivers every value as a JSON string (``{"max_depth": "6"}``). Like the training toolkit,
each value is first ``json.loads``-ed, falling back to the raw text, then validated. Every error names
the key; unknown keys are errors that list the valid ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import HyperparameterError


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    feature_set: Literal["challenge", "full"] = Field("full", description="which features the model uses")
    split: Literal["random", "time"] = Field(
        "time", description="random test split, or the most recent weeks"
    )
    test_size: float = Field(0.33, gt=0, lt=0.9, description="test share when split=random")
    test_weeks: int = Field(8, ge=1, le=26, description="test weeks (the most recent) when split=time")
    validation_size: float = Field(
        0.2,
        gt=0,
        lt=0.9,
        description="share of the rest used for validation when no validation channel is given",
    )
    seed: int = Field(42, ge=0, le=2**31 - 1)
    target_recall: float = Field(
        0.70, gt=0, lt=1, description="delayed-class recall the threshold is tuned for"
    )
    max_invalid_fraction: float = Field(0.01, ge=0, le=1, description="share of unusable rows tolerated")
    num_round: int = Field(1000, ge=1, le=20000, description="maximum boosting rounds")
    early_stopping_rounds: int = Field(50, ge=0, le=5000, description="0 disables early stopping")
    eta: float = Field(0.03, gt=0, le=1)
    max_depth: int = Field(4, ge=1, le=16)
    min_child_weight: float = Field(5.0, ge=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = Field(1.0, ge=0)
    reg_alpha: float = Field(0.0, ge=0)
    max_cat_to_onehot: int = Field(64, ge=1, le=1000, description="categories below this count split one-hot")
    scale_pos_weight: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        "auto", description="'auto' = negatives / positives"
    )

    def changed(self) -> dict:
        """The values that differ from the defaults."""
        return self.model_dump(exclude_defaults=True)

    def to_strings(self) -> dict[str, str]:
        """SageMaker's wire form: every value a string."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.model_dump().items()}


def _decode(value):
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


RESERVED_PREFIX = "_"  # SageMaker's own keys, e.g. _tuning_objective_metric from automatic model tuning


def parse_hyperparameters(values: Mapping[str, object]) -> Hyperparameters:
    """Validated hyperparameters; keys SageMaker reserves (``_``-prefixed) are ignored, any other unknown
    key is an error."""
    values = {k: v for k, v in values.items() if not k.startswith(RESERVED_PREFIX)}
    unknown = sorted(set(values) - set(Hyperparameters.model_fields))
    if unknown:
        valid = ", ".join(Hyperparameters.model_fields)
        raise HyperparameterError(f"unknown hyperparameter(s) {', '.join(unknown)}; valid names: {valid}")
    try:
        return Hyperparameters(**{k: _decode(v) for k, v in values.items()})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][:1])}: {err['msg']} (got {err['input']!r})"
            for err in e.errors()
        )
        raise HyperparameterError(f"invalid hyperparameter {problems}") from None


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings from the command line, as SageMaker would send them."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise HyperparameterError(f"expected key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out
