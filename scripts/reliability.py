#!/usr/bin/env python3
"""Run the reliability tests and write their figures into docs/reliability.md (`make reliability`).

    .venv/bin/python scripts/reliability.py                 # 6-11 min on 2 busy cores
    .venv/bin/python scripts/reliability.py --render-only   # the last figures again, after a renderer change

Runs tests/hardening and tests/contract/test_train_faults.py with SCL_HARDENING_FIGURES pointing at
docs/reliability-figures.json (each measuring test merges its figures there), then replaces the part of
docs/reliability.md between the two FIGURES markers with tables rendered from that file, headed by the
machine and the run they come from. The prose around it says what each test proves; the numbers are
only ever written here, and tests/unit/test_reliability_doc.py checks the document against the file.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from local_aws.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
FIGURES = ROOT / "docs" / "reliability-figures.json"
BEGIN, END = "<!-- FIGURES: written by scripts/reliability.py -->", "<!-- END FIGURES -->"
TESTS = ["tests/hardening", "tests/contract/test_train_faults.py"]


def _statuses(counts: dict) -> str:
    return " · ".join(f"{status}: {n:,}" for status, n in sorted(counts.items())) or "none"


def _ping(f: dict) -> str:
    pings, failed = f.get("pings", 0), f.get("ping_failures", 0)
    return f"`/ping` max {f.get('max_ping_ms', '?')} ms over {pings} pings, {failed} failed"


def _lost(f: dict) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in (f.get("lost_reasons") or {}).items())
    return f"{f.get('lost', 0)} lost" + (f" ({reasons})" if reasons else "")


def _load_rows(figures: dict) -> list[tuple[str, str]]:
    rows = []
    if f := figures.get("load"):
        rows.append(
            (
                f"{f['requests']:,} single-record requests, {f['connections']} keep-alive connections",
                f"**{f['duration_s']} s, {f['requests_per_s']:,} req/s**; error statuses "
                f"{_statuses(f.get('error_statuses') or {})}; {_lost(f)}; "
                f"max latency {f['max_latency_ms']} ms; {_ping(f)}",
            )
        )
    if f := figures.get("worker_kill"):
        rows.append(
            (
                f"SIGKILL of a worker at answer {f['killed_worker_at_answer']:,} of {f['requests']:,}",
                f"**{_lost(f)}**, all on the {f['connections_on_killed_worker']} connections "
                f"the killed worker held; error statuses {_statuses(f.get('error_statuses') or {})}; "
                f"workers {f['workers_before']} → {f['workers_after']}; {_ping(f)}",
            )
        )
    if f := figures.get("sigterm"):
        slow = f.get("slow_request", {})
        rows.append(
            (
                f"SIGTERM to the master under load, at answer {f['sigterm_at_answer']:,}",
                f"master **exit {f['exit_code']}** after {f['exit_after_s']} s; "
                f"the {slow.get('records', 0):,}-record "
                f"request in flight: {slow.get('status')} in {slow.get('duration_s')} s; {_lost(f)}; "
                f"{f.get('partial_responses', 0)} partial answers; {_ping(f)}",
            )
        )
    known = {"load", "worker_kill", "sigterm"}
    for name, f in figures.items():
        if name not in known and "cases" not in f:
            rows.append((name, ", ".join(f"{k}={v}" for k, v in f.items())))
    return rows


def render(doc: dict) -> str:
    """The figures section, from what reliability-figures.json holds (run + figures)."""
    run, figures = doc["run"], doc["figures"]
    cases = {name: f for name, f in figures.items() if "cases" in f}
    lines = [
        f"## Figures ({run['date']}, written by `scripts/reliability.py`)",
        "",
        f"Measured on {run['cpus']} cores ({run['cpu_model']}), load average {run['load_before']:.2f} before "
        f"and {run['load_after']:.2f} after (the machine is shared: latencies and rates are that run's), "
        f"Python {run['python']}, commit `{run['commit']}`. `{run['command']}`: {run['summary']}.",
        "",
        "| property-based cases | cases | statuses | 5xx | 4xx without a JSON `Error` | transport errors |",
        "|---|---:|---|---:|---:|---:|",
    ]
    total = {"cases": 0, "5xx": 0, "4xx_without_json_error": 0, "transport_errors": 0}
    for name, f in sorted(cases.items()):
        lines.append(
            f"| {name} | {f['cases']:,} | {_statuses(f.get('statuses', {}))} | {f.get('5xx', 0)} | "
            f"{f.get('4xx_without_json_error', 0)} | {f.get('transport_errors', 0)} |"
        )
        for key in total:
            total[key] += f.get(key, 0)
    lines.append(
        f"| **all** | **{total['cases']:,}** | | **{total['5xx']}** | "
        f"**{total['4xx_without_json_error']}** | "
        f"**{total['transport_errors']}** |"
    )
    lines += [
        "",
        "| load and faults (a Python client sharing the cores with the server) | figure |",
        "|---|---|",
    ]
    lines += [f"| {what} | {figure} |" for what, figure in _load_rows(figures)]
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"reliability: {DOC} has no {BEGIN} ... {END} section")
    return pattern.sub(lambda _: f"{BEGIN}\n{section}\n{END}", text)


def _commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def main() -> int:
    if sys.argv[1:] == ["--render-only"]:
        DOC.write_text(replace_section(DOC.read_text(), render(json.loads(FIGURES.read_text()))))
        return 0
    command = [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider"]
    shown = "pytest " + " ".join(TESTS)
    scratch = Path(tempfile.mkdtemp(prefix="scl-reliability-")) / "figures.json"
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    print(f"reliability: running {shown} (minutes) ...", file=sys.stderr, flush=True)
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "SCL_HARDENING_FIGURES": str(scratch)},
        capture_output=True,
        text=True,
    )
    summary = (result.stdout.strip().splitlines() or ["no output"])[-1].strip("= ")
    if result.returncode != 0 or not scratch.is_file():
        print(result.stdout[-6000:], result.stderr[-3000:], file=sys.stderr)
        scratch.unlink(missing_ok=True)
        print(
            f"reliability: the tests failed ({summary}); docs/reliability.md left as it was", file=sys.stderr
        )
        return 1
    run = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "python": platform.python_version(),
        "commit": _commit(),
        "command": shown,
        "summary": f"{summary} (wall {time.monotonic() - started:.0f} s)",
    }
    doc = {"run": run, "figures": json.loads(scratch.read_text())}
    scratch.unlink()
    FIGURES.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    DOC.write_text(replace_section(DOC.read_text(), render(doc)))
    print(f"reliability: {summary}; figures written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
