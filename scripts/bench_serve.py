#!/usr/bin/env python3
"""Serving benchmark (issue 3): container/serve on loopback, driven by wrk; prints a markdown table.

    .venv/bin/python scripts/bench_serve.py [--model-dir DIR] [--duration 20] [--worker-class gthread]

Without --model-dir it trains one first with container/train's code (train.py) on the real dataset named
by SCL_DATASET, or else on 20,000 synthetic rows. Requests use real-looking records from that dataset:
single-record JSON bodies rotating over --distinct records, and 1,000-record CSV bodies. Each scenario
runs with the prediction cache on (the default) and off (SCL_PREDICTION_CACHE_SIZE=0), so the table
shows both the cached and the cold cost. wrk shares the machine's cores with the server, as in the
floors: >= 3,000 req/s single-record with p99 <= 25 ms and no errors over >= 50,000 requests;
>= 200,000 records/s with 1,000-record CSV; RSS of all server processes <= 600 MB.
Needs wrk (Debian: `apt-get install -y wrk`; the script tries that when running as root).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIELDS = (
    "Fecha-I",
    "Vlo-I",
    "Ori-I",
    "Des-I",
    "Emp-I",
    "DIA",
    "MES",
    "AÑO",
    "DIANOM",
    "TIPOVUELO",
    "OPERA",
    "SIGLAORI",
    "SIGLADES",
)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk missing: apt-get install -y wrk", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("wrk is needed: install it with `sudo apt-get install -y wrk` (Debian/Ubuntu)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def dataset(workdir: Path) -> Path:
    named = os.environ.get("SCL_DATASET")
    if named:
        return Path(named)
    path = workdir / "synthetic.csv"
    subprocess.run(
        [sys.executable, "-m", "scl_delay.synthetic", "--rows", "20000", "--out", str(path)],
        check=True,
        env=env_with(),
    )
    return path


def train(data: Path, workdir: Path) -> Path:
    model_dir = workdir / "model"
    print(f"training on {data} ...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--data",
            str(data),
            "--model-dir",
            str(model_dir),
            "--output-dir",
            str(workdir / "output"),
        ],
        check=True,
        env=env_with(),
        stdout=subprocess.DEVNULL,
    )
    return model_dir


def sample_rows(data: Path, n: int) -> list[dict]:
    with open(data, encoding="utf-8", newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            rows.append({k: row[k] for k in FIELDS if k in row})
            if len(rows) >= n:
                break
    return rows


def csv_body(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def lua_script(path: Path, bodies: list[str], content_type: str) -> Path:
    """A wrk script cycling over ``bodies`` (kept in files beside it: Lua has no \\u escapes)."""
    files = []
    for i, body in enumerate(bodies):
        files.append(path.with_name(f"{path.stem}-{i}.body"))
        files[-1].write_text(body, encoding="utf-8")
    lines = [
        "bodies = {}",
        f"for _, name in ipairs({{{', '.join(json.dumps(str(f)) for f in files)}}}) do",
        '  local f = assert(io.open(name, "rb")); bodies[#bodies + 1] = f:read("*all"); f:close()',
        "end",
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{content_type}"',
        "requests, counter = {}, 0",
        "init = function(args)",  # format every request once: per-request wrk.format costs wrk's CPU
        '  for i, body in ipairs(bodies) do requests[i] = wrk.format(nil, "/invocations", nil, body) end',
        "end",
        "request = function()",
        "  counter = counter + 1",
        "  return requests[(counter % #requests) + 1]",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class Server:
    def __init__(self, model_dir: Path, port: int, extra_env: dict[str, str]):
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix="serve-", suffix=".log", delete=False)  # noqa: SIM115
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(ROOT / "container" / "serve")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env_with(SM_MODEL_DIR=str(model_dir), SAGEMAKER_BIND_TO_PORT=str(port), **extra_env),
            start_new_session=True,
        )
        deadline = started + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(
                    f"serve exited with {self.proc.returncode}:\n{Path(self.log.name).read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        else:
            self.stop()
            sys.exit("serve did not answer /ping within 30 s")
        self.startup_s = time.monotonic() - started

    def pids(self) -> list[int]:
        return [self.proc.pid] + [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(self.proc.pid)], check=False, capture_output=True, text=True
            ).stdout.split()
        ]

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by gunicorn's master and workers (load-independent cost)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> tuple[float, float]:
        """(RSS summed, PSS summed) over gunicorn's master and workers, in MB."""
        pids = self.pids()
        rss = pss = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                pass
        return rss / 1024, pss / 1024

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


def run_wrk(wrk: str, port: int, script: Path, threads: int, connections: int, duration_s: int) -> dict:
    out = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        check=False,
        capture_output=True,
        text=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99_ms = float(p99.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    return {"requests": requests, "rps": rps, "errors": errors, "p99_ms": p99_ms, "raw": out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--duration", type=int, default=20, help="seconds per single-record run")
    parser.add_argument("--batch-duration", type=int, default=10, help="seconds per CSV run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--distinct", type=int, default=1000, help="distinct records the single requests cycle"
    )
    parser.add_argument("--worker-class", help="SCL_WORKER_CLASS for this run (default: the server's)")
    parser.add_argument("--workers", help="MODEL_SERVER_WORKERS for this run (default: one per core)")
    parser.add_argument("--no-cold", action="store_true", help="skip the runs with the cache off")
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output")
    args = parser.parse_args()
    wrk = ensure_wrk()
    load_before = f"{os.getloadavg()[0]:.2f}"
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        workdir = Path(tmp)
        data = dataset(workdir)
        model_dir = args.model_dir or train(data, workdir)
        rows = sample_rows(data, max(args.distinct, 5000))
        singles = [json.dumps(r, ensure_ascii=False) for r in rows[: args.distinct]]
        batches = [csv_body(rows[i : i + 1000]) for i in range(0, 5000, 1000)]
        single_lua = lua_script(workdir / "single.lua", singles, "application/json")
        batch_lua = lua_script(workdir / "batch.lua", batches, "text/csv")
        extra = {
            k: v
            for k, v in (("SCL_WORKER_CLASS", args.worker_class), ("MODEL_SERVER_WORKERS", args.workers))
            if v
        }
        table = []
        for cache in ("on", "off") if not args.no_cold else ("on",):
            env = dict(extra, **({"SCL_PREDICTION_CACHE_SIZE": "0"} if cache == "off" else {}))
            server = Server(model_dir, free_port(), env)
            try:
                run_wrk(wrk, server.port, single_lua, 2, args.connections, 2)  # warm-up (and cache fill)
                cpu = server.cpu_s()
                single = run_wrk(wrk, server.port, single_lua, 2, args.connections, args.duration)
                single["cpu_us"] = (server.cpu_s() - cpu) / max(single["requests"], 1) * 1e6
                run_wrk(wrk, server.port, batch_lua, 2, 4, 2)
                cpu = server.cpu_s()
                batch = run_wrk(wrk, server.port, batch_lua, 2, 4, args.batch_duration)
                batch["cpu_us"] = (server.cpu_s() - cpu) / max(batch["requests"] * 1000, 1) * 1e6
                rss, pss = server.rss_mb()
            finally:
                code = server.stop()
            if args.verbose:
                print(single["raw"], batch["raw"], file=sys.stderr)
            table.append((cache, server.startup_s, single, batch, rss, pss, code))
    wc = args.worker_class or "default"
    print(
        f"\nworker class: {wc}; workers: {args.workers or os.cpu_count()}; wrk -t2 -c{args.connections} "
        f"{args.duration}s single, -t2 -c4 {args.batch_duration}s CSV; {os.cpu_count()} cores shared with wrk; "
        f"data: {data.name}\n"
    )
    print(
        f"load average before/after: {load_before} / {os.getloadavg()[0]:.2f} (other work on the machine "
        "makes req/s and p99 noisy; server CPU per request is not affected by it)\n"
    )
    print(
        "| cache | startup to /ping 200 | single req/s | single p99 ms | single requests | errors "
        "| server CPU µs/request | CSV 1,000-record records/s | CSV p99 ms | CSV errors | server CPU µs/record "
        "| RSS MB (sum) | PSS MB | exit on SIGTERM |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cache, startup, single, batch, rss, pss, code in table:
        print(
            f"| {cache} | {startup:.2f} s | {single['rps']:,.0f} | {single['p99_ms']:.1f} | {single['requests']:,} "
            f"| {single['errors']} | {single['cpu_us']:.0f} | {batch['rps'] * 1000:,.0f} | {batch['p99_ms']:.1f} "
            f"| {batch['errors']} | {batch['cpu_us']:.1f} "
            f"| {rss:.0f} | {pss:.0f} | {code} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
