"""Helpers for the hardening suite: one live `serve`, a fast keep-alive HTTP client, gunicorn's workers.

The load client is a single-threaded ``selectors`` loop over N keep-alive sockets with pre-encoded
requests: it costs a few tens of microseconds per request, so on a 2-core machine most of the CPU goes
to the server under test, not to the client (``requests`` costs ~1 ms per call). Traffic goes only to
127.0.0.1, and every run is bounded by a request count and a deadline.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from conftest import ROOT

SPEC_PATH = ROOT / "openapi.yaml"
RESULTS_FILE = "hardening-figures.json"
# Records the session artifact (synthetic data, tests/conftest.py) knows.
GOOD = {"Fecha-I": "2017-01-01 23:30:00", "OPERA": "Grupo LATAM", "TIPOVUELO": "I", "Des-I": "KMIA"}
GOOD2 = {"Fecha-I": "2017-07-20 08:05", "OPERA": "Sky Airline", "TIPOVUELO": "N", "Des-I": "SCFA"}
FIELDS = ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I")


def record_figures(request, tmp_dir: Path, name: str, figures: dict) -> None:
    """Keep the figures of one test: JUnit properties (``record_property``) and a JSON file in tmp_dir.

    Also merged into ``$SCL_HARDENING_FIGURES`` when that names a file (docs/reliability.md's numbers).
    """
    for key, value in figures.items():
        request.node.user_properties.append((f"{name}.{key}", value))
    (tmp_dir / RESULTS_FILE).write_text(json.dumps({name: figures}, indent=2))
    target = os.environ.get("SCL_HARDENING_FIGURES")
    if target:
        path = Path(target)
        doc = json.loads(path.read_text()) if path.is_file() else {}
        doc[name] = figures
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"\n[hardening] {name}: {json.dumps(figures)}")


# ---------------------------------------------------------------- gunicorn's processes


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (gunicorn's workers when ``pid`` is the master), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def peer_ports(pid: int, port: int) -> set[int]:
    """Client ports of the TCP connections to ``port`` that process ``pid`` holds open (/proc/net/tcp)."""
    inodes = set()
    try:
        for fd in (Path("/proc") / str(pid) / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local_port, remote_port, inode = (
                int(cols[1].rsplit(":", 1)[1], 16),
                int(cols[2].rsplit(":", 1)[1], 16),
                cols[9],
            )
            if inode in inodes and local_port == port and remote_port:
                found.add(remote_port)
    return found


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return predicate()


# ---------------------------------------------------------------- HTTP on plain sockets


def post_request(
    path: str, body: bytes, content_type: str = "application/json", close: bool = False
) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    )
    return head.encode() + body


def parse_response(buf: bytes) -> tuple[int, bytes, bytes] | None:
    """(status, body, rest of buf) once ``buf`` holds a whole Content-Length response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    start = end + 4
    if len(buf) - start < length:
        return None
    return int(head.split(b" ", 2)[1]), buf[start : start + length], buf[start + length :]


def exchange(port: int, data: bytes, timeout_s: float = 30) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(data)
        buf = b""
        while True:
            parsed = parse_response(buf)
            if parsed:
                return parsed[0], parsed[1]
            chunk = s.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} bytes of response")
            buf += chunk


@dataclass
class LoadResult:
    """What a load run saw. ``lost``: requests sent on a connection that failed before the whole answer."""

    requested: int
    completed: int = 0
    statuses: Counter = field(default_factory=Counter)
    lost: int = 0
    lost_reasons: Counter = field(default_factory=Counter)
    lost_ports: list[int] = field(default_factory=list)  # client port of each connection that lost one
    partial_responses: int = 0  # a connection closed in the middle of an answer: never acceptable
    refused_connections: int = 0
    duration_s: float = 0.0
    max_latency_s: float = 0.0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    @property
    def rate(self) -> float:
        return self.completed / self.duration_s if self.duration_s else 0.0

    def figures(self) -> dict:
        return {
            "requests": self.requested,
            "completed": self.completed,
            "ok": self.statuses.get(200, 0),
            "error_statuses": {str(k): v for k, v in self.statuses.items() if k != 200},
            "lost": self.lost,
            "lost_reasons": dict(self.lost_reasons),
            "partial_responses": self.partial_responses,
            "duration_s": round(self.duration_s, 2),
            "requests_per_s": round(self.rate),
            "max_latency_ms": round(self.max_latency_s * 1000, 1),
        }


class _Conn:
    __slots__ = ("buf", "busy", "port", "sent_at", "sock")

    def __init__(self, sock: socket.socket):
        self.sock, self.port, self.buf, self.sent_at, self.busy = sock, sock.getsockname()[1], b"", 0.0, False


def drive(
    port: int,
    payloads: list[bytes],
    total: int,
    connections: int,
    deadline_s: float,
    stop: threading.Event | None = None,
    progress: list[int] | None = None,
) -> LoadResult:
    """Send ``total`` requests (cycling over ``payloads``) over ``connections`` keep-alive sockets.

    A connection that fails counts its in-flight request as lost (never retried) and reconnects; when
    the server refuses new connections (shut down), that connection retires. Stops at ``total``, at the
    deadline, or when ``stop`` is set (requests already in flight are still awaited until the deadline).
    ``progress[0]`` is kept equal to the number of answers received, for a controller thread to watch.
    """
    result = LoadResult(total)
    selector = selectors.DefaultSelector()
    issued = 0
    start = time.monotonic()
    end = start + deadline_s

    def connect() -> _Conn | None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            result.refused_connections += 1
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(sock)

    def send_next(conn: _Conn) -> None:
        nonlocal issued
        if issued >= total or (stop is not None and stop.is_set()):
            conn.busy = False
            return
        data = payloads[issued % len(payloads)]
        issued += 1
        conn.busy, conn.sent_at = True, time.monotonic()
        try:
            conn.sock.sendall(data)
        except OSError as e:
            fail(conn, type(e).__name__)

    def fail(conn: _Conn, reason: str) -> None:
        if conn.busy:
            result.lost += 1
            result.lost_reasons[reason] += 1
            result.lost_ports.append(conn.port)
            if conn.buf:
                result.partial_responses += 1
        try:
            selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        conn.busy = False
        if stop is not None and stop.is_set():
            return
        fresh = connect()
        if fresh is not None:
            selector.register(fresh.sock, selectors.EVENT_READ, fresh)
            send_next(fresh)

    for _ in range(connections):
        conn = connect()
        if conn is not None:
            selector.register(conn.sock, selectors.EVENT_READ, conn)
            send_next(conn)

    while time.monotonic() < end:
        keys = selector.get_map()
        if not keys or not any(key.data.busy for key in keys.values()):
            break
        for key, _ in selector.select(timeout=0.5):
            conn: _Conn = key.data
            try:
                chunk = conn.sock.recv(1 << 16)
            except OSError as e:
                fail(conn, type(e).__name__)
                continue
            if not chunk:
                fail(conn, "closed by server")
                continue
            conn.buf += chunk
            parsed = parse_response(conn.buf)
            if parsed is None:
                continue
            status, _, conn.buf = parsed
            result.completed += 1
            result.statuses[status] += 1
            result.max_latency_s = max(result.max_latency_s, time.monotonic() - conn.sent_at)
            if progress is not None:
                progress[0] = result.completed
            send_next(conn)
    result.duration_s = time.monotonic() - start
    for key in list(selector.get_map().values()):
        if key.data.busy:
            result.lost += 1
            result.lost_reasons["no answer before the deadline"] += 1
        key.fileobj.close()
    selector.close()
    return result


class PingWatch(threading.Thread):
    """Polls GET /ping on fresh connections every ``interval_s``; keeps the worst latency and failures.

    A ping that fails at the connection level is retried at once (a worker being killed may hold the
    connection); its latency counts from the first attempt.
    """

    def __init__(self, port: int, interval_s: float = 0.1):
        super().__init__(daemon=True)
        self.port, self.interval_s = port, interval_s
        self.halt = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        request = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        while not self.halt.is_set():
            started = time.monotonic()
            for attempt in range(3):
                try:
                    status, body = exchange(self.port, request, timeout_s=5)
                    if status != 200:
                        self.failures.append(f"{status} {body[:200]!r}")
                    break
                except OSError as e:
                    if attempt == 2:
                        self.failures.append(repr(e))
            self.latencies.append(time.monotonic() - started)
            self.halt.wait(self.interval_s)

    def finish(self) -> dict:
        self.halt.set()
        self.join(10)
        return {
            "pings": len(self.latencies),
            "ping_failures": len(self.failures),
            "max_ping_ms": round(max(self.latencies, default=0) * 1000, 1),
        }
