"""What machine a benchmark ran on, for the line every figure in the README and docs carries."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> str:
    """e.g. ``2026-12-03, 2 cores (AMD EPYC 7B13), load average 2.71``: the load says how shared it was."""
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    return f"{date}, {os.cpu_count()} cores ({cpu_model()}), load average {os.getloadavg()[0]:.2f}"
