"""With ``malloc_tuning.keep_freed_memory()``, a request-sized array allocated again and again stops
costing the kernel's page faults (counted by ``getrusage``, in a fresh interpreter each: the setting is
per process)."""

from __future__ import annotations

import subprocess
import sys

ALLOCATIONS = 200
SCRIPT = """
import resource, sys
import numpy as np
from scl_delay import malloc_tuning
if sys.argv[1] == "tuned":
    assert malloc_tuning.keep_freed_memory()
def request():  # a 1,000-record request's arrays: rows x trees masks, terms, indices, all alive at once
    arrays = [np.empty((278, 1000), dtype=np.float32) for _ in range(4)]
    for a in arrays:
        a.fill(1.0)
request()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(ALLOCATIONS):
    request()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", f"ALLOCATIONS = {ALLOCATIONS}\n{SCRIPT}", mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(result.stdout)


def test_request_arrays_reuse_freed_memory_once_tuned():
    untuned, tuned = page_faults("default") / ALLOCATIONS, page_faults("tuned") / ALLOCATIONS
    assert tuned < 1, f"{tuned:.1f} page faults per request with the tuning"
    assert untuned > 100, f"glibc's defaults gave only {untuned:.1f} page faults per request"
