"""A model trained on a prefix of the data answers every later row, as training itself scores it (issue 10).

On SCL_DATASET when set (trained on January-October 2017, asked about November-December: the issue found
842 refusals there), else on the synthetic data. Scored in-process through ``scoring.invoke``, the very
function the server runs per request, so the comparison is exact; the HTTP path is covered elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import make_opt_ml, run_train

from scl_delay.artifact import load_model
from scl_delay.dataset import load_channel
from scl_delay.features import build_features
from scl_delay.scoring import Options, Scorer, invoke

CUTOFF = "2017-11-01"


def test_a_model_trained_on_a_prefix_answers_every_later_row_as_training_scores_it(tmp_path, synthetic_csv):
    source = Path(os.environ.get("SCL_DATASET") or synthetic_csv)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    earlier = frame[frame["Fecha-I"] < CUTOFF]
    later = frame[frame["Fecha-I"] >= CUTOFF].drop_duplicates()
    earlier.to_csv(tmp_path / "earlier.csv", index=False)
    later.to_csv(tmp_path / "later.csv", index=False)
    root = make_opt_ml(
        tmp_path / "opt_ml", tmp_path / "earlier.csv", {"num_round": "60", "early_stopping_rounds": "10"}
    )
    result = run_train(root, timeout_s=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model = load_model(root / "model")

    body = (tmp_path / "later.csv").read_bytes()
    scorer = Scorer(model, cache_size=0)
    out, _, invalid = invoke(scorer, body, "text/csv", "application/json", Options(("probability",)))
    served = json.loads(out)["predictions"]
    assert invalid == 0 and len(served) == len(later), [p for p in served if "error" in p][:5]
    unknown = sum(1 for p in served if "unknown" in p)

    flights = load_channel(tmp_path / "later.csv", max_invalid_fraction=0.0)  # training's own path
    expected = model.predictor.predict_proba(build_features(flights.columns, model.spec))
    assert np.array_equal(np.array([p["probability"] for p in served]), expected.astype(np.float64))
    print(f"\n{len(later)} later rows, {unknown} with values unknown to the model, all answered")
