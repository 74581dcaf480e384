"""gunicorn's gthread worker, listening only while it holds no more connections than the least loaded worker.

gunicorn does not balance connections between its workers: whichever worker's event loop wakes first
accepts, and a worker that has just accepted is awake for the next one, so a client that opens its
connections in one burst can put them all on one worker and leave the other cores idle (README, "Connections
between workers": 32 connections of one wrk thread all on one of 2 workers in 4 runs of 10, at half the
throughput). Each worker here publishes how many connections it holds, and when, in a table shared by all
workers (anonymous shared memory, made in gunicorn's master before it forks), and stops listening while it
holds more than the fewest any live worker published in the last ``STALE_S``, so the next connection goes to
a less loaded worker. A worker that is not listening looks again every ``RECHECK_S`` (gthread waits up to a
second for events when it has none, and the others' counts may have caught up with its own meanwhile). A
worker that stops publishing (stuck in a long call that holds the GIL, or gone) is left out after
``STALE_S``, so the others wait for it that long at most; a single worker behaves as plain gthread.

gunicorn.conf.py installs it for the default ``gthread`` class, with ``pre_fork`` and ``child_exit`` as hooks.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import time

from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

RECHECK_S = 0.005
STALE_S = 1.5  # a live worker's event loop publishes at least once a second (gthread waits 1 s at most)
SLOTS = 64  # workers alive at once (a reload's new and old ones too); past that, a worker is not balanced
_held = multiprocessing.RawArray(ctypes.c_int, SLOTS)  # connections per worker slot
_seen = multiprocessing.RawArray(ctypes.c_double, [-math.inf] * SLOTS)  # when; -inf: no live worker there
_span = multiprocessing.RawValue(ctypes.c_int, 0)  # slots ever given out: only those are read


class BalancedThreadWorker(ThreadWorker):
    """gthread; ``worker_connections``, which its event loop reads before each wait to decide whether to
    listen, is capped at one more than the fewest connections a live worker holds."""

    slot: int | None = None  # given by ``pre_fork`` in the master

    @property
    def worker_connections(self) -> int:
        if self.slot is None:
            return self._most
        if not self.alive:  # stopping (SIGTERM, max_requests): the others must not wait for this one
            _withdraw(self)
            return self._most
        return listen_limit(self.slot, self.nr_conns, self._most, time.monotonic())

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._most = value  # gunicorn's own setting: the most connections one worker holds

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        listening = self._accepting or not self.alive
        super().wait_for_and_dispatch_events(timeout if listening else min(timeout, RECHECK_S))

    def run(self) -> None:
        try:
            super().run()
        finally:
            _withdraw(self)

    def handle_exit(self, sig, frame) -> None:
        _withdraw(self)  # draining: the others must not wait for this one to fill up
        super().handle_exit(sig, frame)


def listen_limit(slot: int, held: int, most: int, now: float) -> int:
    """Publish that the worker in ``slot`` holds ``held`` connections at ``now``; return the most it may hold
    and still listen: one more than the fewest any worker published within ``STALE_S`` (its own count
    included), at most ``most``. An older count is a worker gone or stuck, and is not waited for."""
    _held[slot], _seen[slot] = held, now
    span = _span.value
    fewest = min(h for h, seen in zip(_held[:span], _seen[:span]) if now - seen < STALE_S)
    return min(most, fewest + 1)


def pre_fork(server, worker) -> None:
    """gunicorn hook, in the master: the new worker takes the lowest slot no live worker holds, and slots no
    live worker holds are cleared (a worker can leave without ``child_exit``, e.g. one already gone when the
    master kills it)."""
    taken = {getattr(w, "slot", None) for w in server.WORKERS.values()}
    for slot in set(range(SLOTS)) - taken:
        _seen[slot] = -math.inf
    worker.slot = next((s for s in range(SLOTS) if s not in taken), None)
    if worker.slot is not None:
        _span.value = max(_span.value, worker.slot + 1)


def child_exit(server, worker) -> None:
    """gunicorn hook, in the master: a worker that exited (killed ones too) holds nothing."""
    _withdraw(worker)


def _withdraw(worker) -> None:
    slot = getattr(worker, "slot", None)
    if slot is not None:
        _seen[slot] = -math.inf
