"""The installed package is the product only: the built wheel holds scl_delay and its metadata, and no
test or rehearsal tooling (src/local_aws, tests, scripts). The image installs this same wheel."""

import shutil
import subprocess
import zipfile
from pathlib import Path

from conftest import ROOT


def build_wheel(out: Path) -> Path:
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    result = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("scl_delay-*.whl")
    return wheel


def test_the_wheel_holds_the_package_and_no_test_tooling(tmp_path):
    names = zipfile.ZipFile(build_wheel(tmp_path)).namelist()
    package = {n for n in names if not n.startswith("scl_delay-")}  # the rest is the .dist-info folder
    assert all(n.startswith("scl_delay/") for n in package), sorted(package)
    assert not [n for n in names if "local_aws" in n or "/tests/" in n or "conftest" in n], names
    shipped = {Path(n).relative_to("scl_delay").as_posix() for n in package}
    sources = {
        p.relative_to(ROOT / "src" / "scl_delay").as_posix()
        for p in (ROOT / "src" / "scl_delay").rglob("*.py")
    }
    assert shipped == sources, (sorted(shipped ^ sources), "the wheel and src/scl_delay differ")
