"""Load and faults on loopback, bounded: 50,000 requests, a killed worker, SIGTERM under load; /ping < 2 s.

Each test starts its own `container/serve` (default settings: 2 gthread workers on this machine) on a free
127.0.0.1 port, drives it with the keep-alive client of ``hardening_support.drive`` and writes its
figures (JUnit properties, a JSON file, ``$SCL_HARDENING_FIGURES``).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time

import pytest
from hardening_support import (
    FIELDS,
    GOOD,
    PingWatch,
    children,
    drive,
    exchange,
    peer_ports,
    post_request,
    record_figures,
    wait_for,
)
from processes import start_serve

from scl_delay.scoring import MAX_EXPLAINED_RECORDS

CONNECTIONS = 8
LOAD_REQUESTS = 50_000
LOAD_DEADLINE_S = 45
PING_LIMIT_S = 2.0


@pytest.fixture(scope="module")
def payloads(synthetic_csv) -> list[bytes]:
    """500 distinct single-record JSON requests from the synthetic dataset the session model learned."""
    with open(synthetic_csv, encoding="utf-8", newline="") as f:
        records = [{k: row[k] for k in FIELDS} for row, _ in zip(csv.DictReader(f), range(500))]
    return [post_request("/invocations", json.dumps(r).encode()) for r in records]


@pytest.fixture
def server(trained_opt_ml, model_dir, tmp_path):
    process = start_serve(trained_opt_ml, model_dir, tmp_path)
    try:
        yield process
    finally:
        process.stop()


def workers_of(server) -> list[int]:
    return children(server.proc.pid)


def workers_if(server, condition) -> list[int] | None:
    workers = workers_of(server)
    return workers if condition(workers) else None


def test_fifty_thousand_single_record_requests_in_45_s_without_errors(server, payloads, request, tmp_path):
    watch = PingWatch(server.port)
    watch.start()
    result = drive(server.port, payloads, LOAD_REQUESTS, CONNECTIONS, deadline_s=LOAD_DEADLINE_S + 15)
    pings = watch.finish()
    figures = {**result.figures(), **pings, "connections": CONNECTIONS}
    record_figures(request, tmp_path, "load", figures)
    assert result.completed == LOAD_REQUESTS and result.errors == 0 and result.lost == 0, figures
    assert result.duration_s <= LOAD_DEADLINE_S, figures
    assert pings["ping_failures"] == 0 and pings["max_ping_ms"] < PING_LIMIT_S * 1000, (
        figures,
        watch.failures,
    )


def test_killing_a_worker_under_load_loses_only_its_in_flight_requests(server, payloads, request, tmp_path):
    expected = os.cpu_count() or 1  # the default worker count: one per core
    before = wait_for(lambda: workers_if(server, lambda w: len(w) >= max(2, expected)), 15)
    assert before and len(before) >= 2, f"expected at least 2 workers, found {before}"
    total = 20_000
    progress = [0]
    killed: dict = {}

    def kill_one_worker() -> None:
        wait_for(lambda: progress[0] >= total // 4, timeout_s=30, interval_s=0.01)
        victim = before[0]
        killed["held"] = peer_ports(victim, server.port)  # the load connections the victim is serving
        killed["pid"], killed["at_answer"] = victim, progress[0]
        os.kill(victim, signal.SIGKILL)

    watch = PingWatch(server.port)
    watch.start()
    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    result = drive(server.port, payloads, total, CONNECTIONS, deadline_s=60, progress=progress)
    killer.join(5)
    restored = wait_for(
        lambda: workers_if(server, lambda w: len(w) == len(before) and killed["pid"] not in w), timeout_s=20
    )
    ping_status, _ = exchange(server.port, b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    pings = watch.finish()
    figures = {
        **result.figures(),
        **pings,
        "connections": CONNECTIONS,
        "killed_worker_at_answer": killed.get("at_answer"),
        "workers_before": len(before),
        "workers_after": len(restored or []),
        "connections_on_killed_worker": len(killed.get("held", ())),
    }
    record_figures(request, tmp_path, "worker_kill", figures)
    assert "pid" in killed, f"the load finished before the kill: {figures}"
    assert result.errors == 0, figures
    # at most one request in flight per connection, and only the dead worker's connections may fail
    assert result.lost <= len(killed["held"]), figures
    assert set(result.lost_ports) <= killed["held"], (figures, result.lost_ports, killed["held"])
    assert result.completed + result.lost == total, figures
    assert restored, f"gunicorn did not replace the killed worker: {workers_of(server)}\n{server.log_tail()}"
    assert ping_status == 200 and server.proc.poll() is None
    assert pings["ping_failures"] == 0 and pings["max_ping_ms"] < PING_LIMIT_S * 1000, (
        figures,
        watch.failures,
    )


def test_sigterm_under_load_drains_in_flight_requests_and_exits_0(server, payloads, request, tmp_path):
    progress = [0]
    stop = threading.Event()
    slow: dict = {}
    rows = MAX_EXPLAINED_RECORDS  # the largest explained request: bounded, but slow enough to be in flight
    lines = "".join(
        f"{GOOD['Fecha-I']},{GOOD['OPERA']},{GOOD['TIPOVUELO']},{GOOD['Des-I']}\n" for _ in range(rows)
    )
    slow_request = post_request("/invocations?explain=true", lines.encode(), "text/csv", close=True)

    def slow_call() -> None:  # a request that takes a while, in flight when SIGTERM arrives
        started = time.monotonic()
        try:
            status, body = exchange(server.port, slow_request, timeout_s=60)
            slow["status"], slow["records"] = status, len(json.loads(body).get("predictions", []))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            slow["error"] = repr(e)
        slow["duration_s"] = round(time.monotonic() - started, 2)

    watch = PingWatch(server.port)
    outcome: dict = {}

    def controller() -> None:
        wait_for(lambda: progress[0] >= 3000, timeout_s=30, interval_s=0.01)
        caller = threading.Thread(target=slow_call, daemon=True)
        caller.start()
        time.sleep(0.3)  # the slow request is being scored now
        outcome["pings"] = watch.finish()
        outcome["sigterm_at_answer"] = progress[0]
        signal_time = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)  # the gunicorn master only (container/serve execs it)
        stop.set()
        try:
            outcome["exit_code"] = server.proc.wait(timeout=30)
        except Exception as e:  # noqa: BLE001
            outcome["exit_code"] = repr(e)
        outcome["exit_after_s"] = round(time.monotonic() - signal_time, 2)
        caller.join(30)

    watch.start()
    control = threading.Thread(target=controller, daemon=True)
    control.start()
    result = drive(
        server.port, payloads, LOAD_REQUESTS, CONNECTIONS, deadline_s=60, stop=stop, progress=progress
    )
    control.join(70)
    figures = {
        **result.figures(),
        **outcome.get("pings", {}),
        "connections": CONNECTIONS,
        "sigterm_at_answer": outcome.get("sigterm_at_answer"),
        "exit_code": outcome.get("exit_code"),
        "exit_after_s": outcome.get("exit_after_s"),
        "slow_request": slow,
    }
    record_figures(request, tmp_path, "sigterm", figures)
    assert outcome.get("exit_code") == 0, f"{figures}\n{server.log_tail()}"
    assert slow.get("status") == 200 and slow.get("records") == rows, figures
    assert result.errors == 0 and result.partial_responses == 0, figures
    assert result.lost <= CONNECTIONS, figures
    assert figures["ping_failures"] == 0 and figures["max_ping_ms"] < PING_LIMIT_S * 1000, figures
