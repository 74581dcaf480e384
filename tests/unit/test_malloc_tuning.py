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
def request():
    a = np.empty((278, 1000), dtype=np.float32)  # the leaf masks' terms of a 1,000-record request
    a.fill(1.0)
    b = np.empty((278, 1000), dtype=np.uint16)
    b.fill(1)
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
    pages_per_request = (278 * 1000 * 6) // 4096  # ~400
    untuned, tuned = page_faults("default"), page_faults("tuned")
    assert tuned < ALLOCATIONS, f"{tuned} page faults over {ALLOCATIONS} requests with the tuning"
    # glibc's defaults: fresh pages for some or all of them (how many varies with its run-time threshold)
    assert untuned > tuned, (untuned, tuned, pages_per_request)
