"""docs/reliability.md's figures are what scripts/reliability.py rendered from its last measurement
(docs/reliability-figures.json), not numbers typed by hand: a hand edit, or a renderer change without a
rerun, fails here. `make reliability` measures again and rewrites both."""

import importlib.util
import json
import re

from conftest import ROOT


def reliability_script():
    spec = importlib.util.spec_from_file_location("reliability", ROOT / "scripts" / "reliability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_figures_section_is_the_rendering_of_the_measured_file():
    script = reliability_script()
    doc = script.DOC.read_text()
    section = re.search(re.escape(script.BEGIN) + "\n(.*?)\n" + re.escape(script.END), doc, re.DOTALL)
    assert section, f"{script.DOC} lost its figures markers"
    measured = json.loads(script.FIGURES.read_text())
    assert section.group(1) == script.render(measured), (
        "run `make reliability` instead of editing the figures"
    )
    assert measured["figures"]["load"]["requests"] >= 50_000 and "passed" in measured["run"]["summary"]
