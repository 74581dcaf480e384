"""The git commit a run comes from, for the artifact, job tags and resource names."""

from __future__ import annotations

import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def head_commit(cwd: Path | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout at ``cwd``; "unknown" outside git or before the first commit."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=cwd,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else UNKNOWN
