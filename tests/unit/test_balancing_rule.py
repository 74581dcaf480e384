"""The balancing rule and gunicorn's hooks of ``balanced_accept``, in-process on its shared table (the live
behaviour under a real gunicorn is tests/hardening/test_balanced_accept.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from scl_delay import balanced_accept as ba

MOST = 1000  # gunicorn's worker_connections


@pytest.fixture
def master():
    """A fake arbiter whose ``WORKERS`` the hooks read, with two workers forked (slots 0 and 1)."""
    server = SimpleNamespace(WORKERS={})
    ba.pre_fork(server, SimpleNamespace())  # no live worker: every slot cleared
    for pid in (101, 102):
        worker = SimpleNamespace()
        ba.pre_fork(server, worker)
        server.WORKERS[pid] = worker
    return server


def test_only_the_least_loaded_worker_listens(master):
    first, second = (w.slot for w in master.WORKERS.values())
    assert (first, second) == (0, 1)
    assert ba.listen_limit(first, 0, MOST, now=10.0) == 1  # second not published yet: its own count only
    assert ba.listen_limit(second, 3, MOST, now=10.0) == 1  # 3 held, the fewest 0: it stops listening
    assert ba.listen_limit(first, 3, MOST, now=10.0) == 4  # a tie: both listen
    assert ba.listen_limit(first, 2, 2, now=10.0) == 2  # gunicorn's own cap still holds


def test_a_worker_that_stops_publishing_is_not_waited_for(master):
    first, second = (w.slot for w in master.WORKERS.values())
    ba.listen_limit(first, 0, MOST, now=10.0)
    assert ba.listen_limit(second, 5, MOST, now=10.0 + ba.STALE_S / 2) == 1
    assert ba.listen_limit(second, 5, MOST, now=10.0 + ba.STALE_S) == 6  # first is stuck or gone


def test_an_exited_worker_holds_nothing_and_its_slot_is_reused(master):
    (pid, gone), (_, kept) = master.WORKERS.items()
    ba.listen_limit(gone.slot, 0, MOST, now=10.0)
    ba.child_exit(master, master.WORKERS.pop(pid))
    assert ba.listen_limit(kept.slot, 7, MOST, now=10.0) == 8  # the dead worker's 0 no longer counts
    replacement = SimpleNamespace()
    ba.pre_fork(master, replacement)
    assert replacement.slot == gone.slot


def test_a_worker_gone_without_child_exit_is_cleared_at_the_next_fork(master):
    (pid, gone), (_, kept) = master.WORKERS.items()
    ba.listen_limit(gone.slot, 0, MOST, now=10.0)
    del master.WORKERS[pid]  # e.g. already gone when the master killed it: no child_exit
    ba.pre_fork(master, SimpleNamespace())
    assert ba.listen_limit(kept.slot, 7, MOST, now=10.0) == 8
