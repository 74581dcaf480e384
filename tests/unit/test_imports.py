"""What the serving modules import: scikit-learn is for `train` only.

xgboost itself imports ``scipy.sparse`` (xgboost/core.py) and ``scipy.special`` (xgboost/sklearn.py) on
every import, so scipy as a package cannot be absent; what must stay out is scikit-learn and the rest of
scipy it drags in (optimize, stats, linalg, ...: ~400 modules, seconds of `serve`'s start-up).
"""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

XGBOOST_OWN_SCIPY = {"scipy.sparse", "scipy.special"}
PROBE = """
import json, sys
import {module}
loaded = sorted(sys.modules)
print(json.dumps(loaded))
"""


def loaded_modules(module: str, env: dict[str, str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("module", ["serve", "scl_delay.server"])
def test_serving_imports_neither_scikit_learn_nor_its_scipy(module, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OPT_ML_DIR": str(tmp_path)}  # no model: serve.py builds its 503 app
    loaded = loaded_modules(module, env)
    assert "xgboost" in loaded, "the probe must load the model code to mean anything"
    assert not {m for m in loaded if m.split(".")[0] == "sklearn"}
    scipy_subpackages = {".".join(m.split(".")[:2]) for m in loaded if m.startswith("scipy.")}
    beyond_xgboost = {m for m in scipy_subpackages if not m.split(".")[1].startswith("_")} - XGBOOST_OWN_SCIPY
    assert not beyond_xgboost - {"scipy.version"}, sorted(beyond_xgboost)


def test_training_still_gets_scikit_learn_after_the_model_module_hid_it(tmp_path):
    loaded = loaded_modules("scl_delay.model, scl_delay.metrics, scl_delay.baseline", {"PATH": "/usr/bin"})
    assert "sklearn.metrics" in loaded and "sklearn.linear_model" in loaded


def test_serving_freezes_what_it_loads_before_gunicorn_forks(tmp_path):
    """serve.py, imported by gunicorn's master (preload_app), leaves its objects to the permanent
    generation."""
    probe = "import gc, serve; print(gc.get_freeze_count())"
    env = {"PATH": "/usr/bin:/bin", "OPT_ML_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 10_000  # the package, Flask, NumPy, XGBoost: tens of thousands
