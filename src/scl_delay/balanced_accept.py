"""gunicorn's gthread worker, listening only while it holds no more connections than the least loaded worker.

gunicorn does not balance connections between its workers: whichever worker's event loop wakes first
accepts, and a worker that has just accepted is awake for the next one, so a client that opens its
connections in one burst can put them all on one worker and leave the other cores idle (README, "Connections
between workers": 32 connections of one wrk thread all on one of 2 workers in 4 runs of 10, at half the
throughput). Each worker here publishes how many connections it holds in a table shared by all workers
(anonymous shared memory, made in gunicorn's master before it forks) and stops listening while it holds more
than the fewest any live worker holds, so the next connection goes to a less loaded worker. A worker that is
not listening looks again every ``RECHECK_S`` (gthread waits up to a second for events when it has none, and
the others' counts may have caught up with its own meanwhile), so a connection waits that long at most
before a worker holding the fewest listens; a single worker behaves as plain gthread.

gunicorn.conf.py installs it for the default ``gthread`` class, with ``pre_fork`` and ``child_exit`` as hooks.
"""

from __future__ import annotations

import ctypes
import multiprocessing

from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

RECHECK_S = 0.005
SLOTS = 64  # workers alive at once (a reload's new and old ones too); past that, a worker is not balanced
_ABSENT = 2**31 - 1  # a slot no live worker holds: never the fewest
_held = multiprocessing.RawArray(ctypes.c_int, [_ABSENT] * SLOTS)  # connections per worker slot


class BalancedThreadWorker(ThreadWorker):
    """gthread; ``worker_connections``, which its event loop reads before each wait to decide whether to
    listen, is capped at one more than the fewest connections a live worker holds."""

    slot: int | None = None  # given by ``pre_fork`` in the master

    @property
    def worker_connections(self) -> int:
        if self.slot is None:
            return self._most
        _held[self.slot] = self.nr_conns
        return min(self._most, min(_held) + 1)

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._most = value  # gunicorn's own setting: the most connections one worker holds

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        super().wait_for_and_dispatch_events(timeout if self._accepting else min(timeout, RECHECK_S))

    def run(self) -> None:
        try:
            super().run()
        finally:
            _withdraw(self)

    def handle_exit(self, sig, frame) -> None:
        _withdraw(self)  # draining: the others must not wait for this one to fill up
        super().handle_exit(sig, frame)


def pre_fork(server, worker) -> None:
    """gunicorn hook, in the master: the new worker takes the lowest slot no live worker holds (its count
    stays absent until its event loop starts)."""
    taken = {getattr(w, "slot", None) for w in server.WORKERS.values()}
    worker.slot = next((s for s in range(SLOTS) if s not in taken), None)
    if worker.slot is not None:
        _held[worker.slot] = _ABSENT


def child_exit(server, worker) -> None:
    """gunicorn hook, in the master: a worker that exited (killed ones too) holds nothing."""
    _withdraw(worker)


def _withdraw(worker) -> None:
    slot = getattr(worker, "slot", None)
    if slot is not None:
        _held[slot] = _ABSENT
