"""Hyperparameters arrive as JSON strings; every error names the key."""

import pytest

from scl_delay.errors import HyperparameterError
from scl_delay.hyperparameters import Hyperparameters, parse_hyperparameters, parse_overrides


def test_string_values_are_parsed_to_their_declared_types():
    hp = parse_hyperparameters(
        {
            "max_depth": "6",
            "eta": "0.1",
            "feature_set": "challenge",
            "split": '"random"',
            "scale_pos_weight": "3",
        }
    )
    assert (hp.max_depth, hp.eta, hp.feature_set, hp.split, hp.scale_pos_weight) == (
        6,
        0.1,
        "challenge",
        "random",
        3.0,
    )


def test_defaults_round_trip_through_sagemaker_strings():
    defaults = Hyperparameters()
    strings = defaults.to_strings()
    assert all(isinstance(v, str) for v in strings.values())
    assert parse_hyperparameters(strings) == defaults


@pytest.mark.parametrize(
    "values, named",
    [
        ({"max_depth": "99"}, "max_depth"),
        ({"max_depth": "0.5"}, "max_depth"),
        ({"eta": "fast"}, "eta"),
        ({"feature_set": "everything"}, "feature_set"),
        ({"target_recall": "1.5"}, "target_recall"),
        ({"scale_pos_weight": "-1"}, "scale_pos_weight"),
        ({"split": "time", "test_size": "0"}, "test_size"),
    ],
)
def test_invalid_values_name_the_key(values, named):
    with pytest.raises(HyperparameterError, match=named):
        parse_hyperparameters(values)


def test_unknown_keys_are_rejected_with_the_valid_names_listed():
    with pytest.raises(HyperparameterError) as error:
        parse_hyperparameters({"max_deph": "4"})
    assert "max_deph" in str(error.value) and "max_depth" in str(error.value)


def test_changed_lists_only_values_that_differ_from_defaults():
    assert parse_hyperparameters({"eta": "0.2", "max_depth": str(Hyperparameters().max_depth)}).changed() == {
        "eta": 0.2
    }


def test_overrides_must_be_key_value_pairs():
    assert parse_overrides(["eta=0.1", " max_depth = 3 "]) == {"eta": "0.1", "max_depth": "3"}
    with pytest.raises(HyperparameterError, match="key=value"):
        parse_overrides(["eta"])


def test_keys_sagemaker_reserves_are_ignored_and_other_unknown_keys_are_errors():
    hp = parse_hyperparameters({"_tuning_objective_metric": "validation:f1", "max_depth": "5"})
    assert hp.max_depth == 5
    with pytest.raises(HyperparameterError, match="unknown hyperparameter"):
        parse_hyperparameters({"tuning_objective_metric": "validation:f1"})
