#!/usr/bin/env python3
"""Serving benchmark (issues 10 and 15): container/serve on loopback against a constant-returning Flask app
under the same gunicorn settings, driven by wrk, with distinct real records; prints a markdown table.

    .venv/bin/python scripts/bench_serve.py [--model-dir DIR] [--duration 10] [--repeats 2]
    .venv/bin/python scripts/bench_serve.py --model-dir DIR --duration 1 --batch-duration 1 --repeats 1 \
        --cache-entries 500        # a smoke run: seconds, not minutes (tests/contract/test_benchmarks.py)

Without --model-dir it trains one first (train.py) on the real dataset as local_aws.real_dataset finds it
(SCL_DATASET, else ../shared/data/dataset_SCL.csv), or else on 20,000 synthetic rows. Every request
carries records of that dataset that no other request of the run carries: copies of the data shifted by
whole weeks past its own span (53 for the SCL year; the weekday stays, and a one-week shift would repeat next
week's flights), then by seconds, so the prediction cache never answers by accident. One record in
``UNKNOWN_EVERY`` names a destination the model never saw (as 6.8% of a later season's flights did for a
model trained on the months before), which the server scores and flags. Three servers run
side by side: the cache off (SCL_PREDICTION_CACHE_SIZE=0), the cache on with the default settings and
filled before it is measured (1.5x its size of other distinct records, each on a new connection so that
every worker fills, as after hours of traffic), and the constant app (the floor). Single-record runs are
interleaved (floor, off, floor, on, floor, on, floor, off, ..., floor) and each is reported against the
floor runs just before and after it, the median over rounds (this machine's speed drifts by 2x within
minutes; neighbours share the drift); 1,000-record CSV bodies in ABBA order (off, on, on, off, ...) in
records/s beside XGBoost's own in-process throughput on the same rows, measured between the rounds. wrk
(threads: ``SINGLE_THREADS``, ``CSV_THREADS``) shares the machine's cores with the servers. Floors (issues
10 and 15): single-record cache off >= 0.80x the floor, p99 <= 20 ms, no errors over >= 50,000 requests;
CSV cache off >= 200,000 records/s; cache on (full) >= 0.95x cache off for both. Needs wrk (Debian's
package; installed with apt-get when run as root).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from local_aws.process import free_port
from local_aws.real_dataset import find_real_dataset, why_absent

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIELDS = ("Fecha-I", "Vlo-I", "Ori-I", "Des-I", "Emp-I", "DIA", "MES", "AÑO", "DIANOM", "TIPOVUELO", "OPERA")
FIELDS += ("SIGLAORI", "SIGLADES")
UNKNOWN_EVERY = 20  # one record in 20 names a destination the model never saw
CACHE_KEY_FIELDS = ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I", "SIGLADES")  # the model inputs a record sends
SEPARATOR = "\x1e"  # ASCII record separator between request bodies in a wrk body file
# wrk threads: 2 for single records (one thread's 32 connections may all land on one gunicorn worker), 1 for
# CSV (no clock skew: see wrk_script)
SINGLE_THREADS, CSV_THREADS = 2, 1
FILL_BODY_RECORDS = 4  # records per cache-filling request: requests up to this size use the cache
FILL_FACTOR = 1.5  # records sent to fill the cache, per cache entry of all workers


def ensure_wrk() -> str:
    """wrk from PATH, else Debian's package (apt-get, as root; the package lists refreshed if need be)."""
    if not shutil.which("wrk") and os.geteuid() == 0 and shutil.which("apt-get"):
        for step in (["install", "-y", "-q", "wrk"], ["update", "-q"], ["install", "-y", "-q", "wrk"]):
            if not shutil.which("wrk"):
                print(f"wrk missing: apt-get {' '.join(step)}", file=sys.stderr)
                subprocess.run(["apt-get", *step], check=False, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed: install it with `sudo apt-get install -y wrk` (Debian/Ubuntu)")
    return found


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def dataset(workdir: Path) -> Path:
    """The real dataset as local_aws.real_dataset finds it, else synthetic data (and says so)."""
    found = find_real_dataset()
    if found:
        return found
    say(f"{why_absent()}: synthetic data")
    path = workdir / "synthetic.csv"
    subprocess.run(
        [sys.executable, "-m", "scl_delay.synthetic", "--rows", "20000", "--out", str(path)],
        check=True,
        env=env_with(),
    )
    return path


def train(data: Path, workdir: Path) -> Path:
    model_dir = workdir / "model"
    say(f"training on {data} ...")
    args = ["--data", str(data), "--model-dir", str(model_dir), "--output-dir", str(workdir / "output")]
    subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], check=True, env=env_with(), stdout=subprocess.DEVNULL
    )
    return model_dir


def read_rows(data: Path, known: dict[str, set[str]] | None) -> list[tuple[dict, datetime]]:
    """The dataset's records (the columns a client sends) with their parsed scheduled time, each once by what
    the prediction cache keys on (a few flights appear twice in the data). Unless ``known`` restricts them
    to known values, one in ``UNKNOWN_EVERY`` gets a destination no model has seen (its first two letters,
    so the flight type stays right, then ``ZZ``)."""
    rows, seen = [], set()
    with open(data, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.DictReader(f)):
            record = {k: row[k] for k in FIELDS if k in row}
            if known and not all(record.get(f, "").strip() in allowed for f, allowed in known.items()):
                continue
            if not known and number % UNKNOWN_EVERY == 0 and record.get("Des-I"):
                record["Des-I"] = record["Des-I"][:2] + "ZZ"
            key = tuple(record.get(f) for f in CACHE_KEY_FIELDS)
            try:
                scheduled = datetime.strptime(record["Fecha-I"], "%Y-%m-%d %H:%M:%S")
            except (KeyError, ValueError):
                continue  # one copy would equal the next: not a distinct record
            if key not in seen:
                seen.add(key)
                rows.append((record, scheduled))
    return rows


def distinct_records(rows: list[tuple[dict, datetime]]) -> Iterator[dict]:
    """The rows, then the rows 53 weeks later, 106 weeks later, ... up to the last year the server accepts,
    then all of that again a second later, two seconds later, ...: never the same record twice. Whole weeks
    keep the weekday; 53 of them (371 days) put each copy past the whole of the previous one. One week would
    not do: flights repeat weekly, and 72% of the year's records shifted by a week are another of its records,
    which the prediction cache then answers. Seconds are not a feature (minutes are)."""
    from scl_delay.schema import YEARS

    first, last = min(s for _, s in rows), max(s for _, s in rows)
    step = timedelta(weeks=(last - first) // timedelta(weeks=1) + 1)
    years = (datetime(YEARS[1], 12, 31) - last) // step + 1  # copies whose dates the server still accepts
    for copy in itertools.count():
        shift = step * (copy % years) + timedelta(seconds=copy // years)
        for record, scheduled in rows:
            when = scheduled + shift
            yield {
                **record,
                "Fecha-I": when.isoformat(" "),  # YYYY-MM-DD HH:MM:SS: the times are whole seconds
                "DIA": str(when.day),
                "MES": str(when.month),
                "AÑO": str(when.year),
            }


def csv_body(rows: list[dict]) -> str:
    """A header line, then the rows (every record has the same keys in the same order)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rows[0])
    writer.writerows(r.values() for r in rows)
    return out.getvalue()


def json_bodies(records: Iterator[dict], count: int, per_body: int = 1) -> list[str]:
    if per_body == 1:
        return [json.dumps(r, ensure_ascii=False) for r in itertools.islice(records, count)]
    return [json.dumps(list(itertools.islice(records, per_body)), ensure_ascii=False) for _ in range(count)]


@dataclass(frozen=True)
class WrkScript:
    path: Path
    threads: int  # the wrk threads it was written for, each with its own share of the bodies


def wrk_script(
    path: Path, bodies: list[str], content_type: str, threads: int, close: bool = False
) -> WrkScript:
    """A wrk script whose threads send disjoint shares of ``bodies`` (all of them each when there are fewer
    bodies than threads), each once; ``done`` prints how many a thread sent against how many it had, so a
    run that ran out (and repeated) is flagged. ``close``: a new connection per request, so that every
    request goes to whichever worker accepts it.

    Each thread reads a file of its own share: wrk runs a thread's ``init`` in its main thread, starts that
    thread, goes on to the next thread's ``init``, and starts its clock after the last, so the first thread
    sends while the second reads (with 2 threads that each read every 1,000-record CSV body: 4-5 s before a
    5 s run, which read as 1.3-1.4x the records/s). With a share each, the second thread's reading is ~0.15
    s of single-record bodies: some 2-3% more requests than the clock's, for every app alike. Single
    records still use 2 threads: gunicorn does not balance connections between workers, and 32 opened at
    once by one wrk thread landed all on one worker in 4 runs of 10 (half the throughput)."""
    shares = [bodies] * threads if len(bodies) < threads else [bodies[i::threads] for i in range(threads)]
    for i, share in enumerate(shares):
        path.with_suffix(f".{i}.bodies").write_text(SEPARATOR.join(share), encoding="utf-8")
    prefix = str(path.with_suffix(""))
    path.write_text(
        f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
{'wrk.headers["Connection"] = "close"' if close else ""}
local threads, next_id = {{}}, 0
setup = function(thread)
  thread:set("id", next_id); next_id = next_id + 1; table.insert(threads, thread)
end
init = function(args)
  local f = assert(io.open({json.dumps(prefix)} .. "." .. id .. ".bodies", "rb"))
  local all = f:read("*all"); f:close()
  requests, sent = {{}}, 0
  for body in string.gmatch(all, "([^\\30]+)") do
    requests[#requests + 1] = wrk.format(nil, "/invocations", nil, body)
  end
  available = #requests
end
request = function()
  sent = sent + 1
  return requests[((sent - 1) % #requests) + 1]
end
done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("bodies sent %d of %d\\n", thread:get("sent"), thread:get("available")))
  end
end
"""
    )
    return WrkScript(path, threads)


class Server:
    """A gunicorn process group on a free loopback port; ``wait_ready`` until /ping answers 200."""

    def __init__(self, command: list[str], extra_env: dict[str, str], name: str):
        self.port, self.name = free_port(), name
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env_with(SAGEMAKER_BIND_TO_PORT=str(self.port), **extra_env),
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        while time.monotonic() < self.started + 60:
            if self.proc.poll() is not None:
                log = Path(self.log.name).read_text()[-3000:]
                sys.exit(f"{self.name} exited with {self.proc.returncode}:\n{log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            sys.exit(f"{self.name} did not answer /ping within 60 s")
        self.startup_s = time.monotonic() - self.started

    def pids(self) -> list[int]:
        children = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], check=False, capture_output=True, text=True
        )
        return [self.proc.pid] + [int(p) for p in children.stdout.split()]

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

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


def run_wrk(
    wrk: str,
    server: Server,
    script: WrkScript,
    connections: int,
    duration_s: float,
    records: int = 1,
) -> dict:
    cpu = server.cpu_s()
    out = subprocess.run(
        [
            wrk,
            f"-t{script.threads}",
            f"-c{connections}",
            f"-d{max(round(duration_s), 1)}s",
            "--latency",
            "--timeout",
            "5s",
            "-s",
            str(script.path),
        ]
        + [f"http://127.0.0.1:{server.port}"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    used = [(int(a), int(b)) for a, b in re.findall(r"bodies sent (\d+) of (\d+)", out)]
    return {
        "requests": requests,
        "records": requests * records,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
        "p99_ms": float(p99.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)],
        "repeated": any(sent > available for sent, available in used),
        "cpu_us": (server.cpu_s() - cpu) / max(requests * records, 1) * 1e6,
        "raw": out,
    }


def inprocess_xgboost_records_s(model_dir: Path, batches: list[list[dict]], seconds: float = 3.0) -> float:
    """XGBoost's own throughput on the rows of the CSV bodies, one thread (as each server worker has)."""
    from scl_delay.artifact import load_model
    from scl_delay.features import build_features
    from scl_delay.model import predict_proba
    from scl_delay.schema import parse_columns

    model = load_model(model_dir)
    fields = model.input_schema.fields
    matrices = []
    for rows in batches:
        columns, _ = parse_columns(
            {f: [r.get(f) for r in rows] for f in fields}, len(rows), model.input_schema
        )
        matrices.append(build_features(columns, model.spec))
    booster, iterations = model.predictor.booster, model.predictor.iteration_range
    done, began = 0, time.process_time()
    while time.process_time() - began < seconds:
        for X in matrices:
            predict_proba(booster, X, iterations)
            done += len(X)
    return done / (time.process_time() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--duration", type=int, default=6, help="seconds per single-record run")
    parser.add_argument("--batch-duration", type=int, default=5, help="seconds per CSV run")
    parser.add_argument("--repeats", type=int, default=4, help="rounds of interleaved runs")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--known-only", action="store_true", help="leave out records with unknown values")
    parser.add_argument(
        "--cache-entries",
        type=int,
        help="SCL_PREDICTION_CACHE_SIZE of the cache-on server (default: its own)",
    )
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output")
    args = parser.parse_args()
    wrk = ensure_wrk()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        workdir = Path(tmp)
        data = dataset(workdir)
        model_dir = args.model_dir or train(data, workdir)
        results, servers, xgb_rps = measure(args, wrk, workdir, data, model_dir)
    print_report(args, results, servers, xgb_rps, data, load_before)
    return 0


def measure(args, wrk: str, workdir: Path, data: Path, model_dir: Path):
    from scl_delay.artifact import read_metadata
    from scl_delay.settings import ServeSettings

    known = None
    if args.known_only:
        categories = read_metadata(model_dir)["input_schema"]["categories"]
        known = {field: set(values) for field, values in categories.items()}
    records = distinct_records(read_rows(data, known))
    cache_env = {} if args.cache_entries is None else {"SCL_PREDICTION_CACHE_SIZE": str(args.cache_entries)}
    settings = ServeSettings.from_env(env_with(**cache_env))
    serve = [str(ROOT / "container" / "serve")]
    floor = ["gunicorn", "-c", str(ROOT / "container" / "gunicorn.conf.py"), "--chdir", str(ROOT / "scripts")]
    servers = {
        "off": Server(serve, {"SM_MODEL_DIR": str(model_dir), "SCL_PREDICTION_CACHE_SIZE": "0"}, "cache-off"),
        "on": Server(serve, {"SM_MODEL_DIR": str(model_dir), **cache_env}, "cache-on"),
        "floor": Server(floor + ["bench_constant_app:app"], {}, "constant-app"),
    }
    results: dict[str, list[dict]] = {}
    counter = itertools.count()

    def single(name: str, seconds: float, bodies_per_s: float, key: str | None = None) -> dict:
        bodies = json_bodies(records, max(int(bodies_per_s * seconds * 2.5), 10_000))  # wrk threads vary
        script = wrk_script(workdir / f"run{next(counter)}.lua", bodies, "application/json", SINGLE_THREADS)
        result = run_wrk(wrk, servers[name], script, args.connections, seconds)
        if args.verbose:
            print(result["raw"], file=sys.stderr)
        if key:
            results.setdefault(key, []).append(result)
            result["key"] = key
            results.setdefault("sequence", []).append(result)
        return result

    try:
        for server in servers.values():  # started together, waited for in turn
            server.wait_ready()
        rate = max(single(name, 2, 5_000)["rps"] for name in ("off", "on", "floor"))  # warm-up
        say(f"warmed up; constant app at {rate:,.0f} req/s")
        fill_cache(wrk, workdir, servers["on"], records, settings.workers * settings.prediction_cache_size)
        for round_ in range(args.repeats):  # floor, off, floor, on, floor, on, floor, off, ..., floor
            say(f"single-record round {round_ + 1} of {args.repeats}")
            for name in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                single("floor", args.duration, rate, "floor")
                single(name, args.duration, rate, f"single {name}")
        single("floor", args.duration, rate, "floor")
        one = json_bodies(records, 1)
        repeated = wrk_script(workdir / "repeated.lua", one, "application/json", SINGLE_THREADS)
        results["single repeated"] = [
            run_wrk(wrk, servers["on"], repeated, args.connections, args.duration / 2)
        ]
        say("1,000-record CSV bodies")
        batch_rows, csv_rate = [], 0.0
        for name in ("off", "on"):  # warm-up, and how many bodies a run needs
            bodies = [csv_body(list(itertools.islice(records, 1000))) for _ in range(100)]
            script = wrk_script(workdir / f"run{next(counter)}.lua", bodies, "text/csv", CSV_THREADS)
            result = run_wrk(wrk, servers[name], script, 4, 2, records=1000)
            csv_rate = max(csv_rate, result["records"] / 2)
        xgb_rates = []
        for round_ in range(args.repeats):
            for name in ("off", "on") if round_ % 2 == 0 else ("on", "off"):  # ABBA: drift cancels out
                # twice what the fastest run so far would send in a run
                needed = int(csv_rate * args.batch_duration * 2 / 1000) + 20
                bodies = []
                for _ in range(needed):  # only the first 20 batches kept as records (in-process XGBoost)
                    rows = list(itertools.islice(records, 1000))
                    batch_rows += [rows][: 20 - len(batch_rows)]
                    bodies.append(csv_body(rows))
                script = wrk_script(workdir / f"run{next(counter)}.lua", bodies, "text/csv", CSV_THREADS)
                result = run_wrk(wrk, servers[name], script, 4, args.batch_duration, records=1000)
                csv_rate = max(csv_rate, result["records"] / args.batch_duration)
                results.setdefault(f"csv {name}", []).append(result)
            xgb_rates.append(inprocess_xgboost_records_s(model_dir, batch_rows, seconds=1.5))
        for server in servers.values():
            server.rss = server.rss_mb()
    finally:
        for server in servers.values():
            server.code = server.stop()
    return results, servers, statistics.median(xgb_rates)


def fill_cache(wrk: str, workdir: Path, server: Server, records: Iterator[dict], entries: int) -> None:
    """Send FILL_FACTOR x the cache's entries (all workers) of distinct records in small bodies, each on a
    new connection: gunicorn's workers keep a connection to themselves, so with keep-alive one worker can
    get every connection of a run, and its neighbour's cache stays empty."""
    target, sent, began, per_run = int(entries * FILL_FACTOR), 0, time.monotonic(), 4_000
    while sent < target:
        bodies = json_bodies(records, per_run, FILL_BODY_RECORDS)
        script = wrk_script(workdir / "fill.lua", bodies, "application/json", SINGLE_THREADS, close=True)
        result = run_wrk(wrk, server, script, 32, 3, records=FILL_BODY_RECORDS)
        sent += result["records"]
        per_run = max(int(result["requests"] * 1.3), 1_000)
    say(f"cache filled: {sent:,} distinct records in {time.monotonic() - began:.0f} s")


def per_run(results: dict, key: str) -> list[float]:
    return [r["rps"] for r in results[key]]


def round_ratios(results: dict) -> dict[str, list[float]]:
    """Per round: each single-record run against the floor runs just before and after it (the runs go floor,
    off, floor, on, floor, on, floor, off, ..., floor), cache on against cache off through those ratios (so
    the floors absorb the machine's drift), and the CSV pair of a round."""
    sequence = results["sequence"]
    to_floor: dict[str, list[float]] = {"single off": [], "single on": []}
    for i, run in enumerate(sequence):
        if run["key"] in to_floor:
            to_floor[run["key"]].append(run["rps"] / ((sequence[i - 1]["rps"] + sequence[i + 1]["rps"]) / 2))
    csv_pairs = zip(per_run(results, "csv on"), per_run(results, "csv off"))
    return {
        "cache off / floor": to_floor["single off"],
        "cache on / floor": to_floor["single on"],
        "cache on / cache off": [on / off for on, off in zip(to_floor["single on"], to_floor["single off"])],
        "CSV on / off": [on / off for on, off in csv_pairs],
    }


def print_report(args, results: dict, servers: dict, xgb_rps: float, data: Path, load_before: float) -> None:
    def med(key: str, field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    def total(key: str, field: str) -> int:
        return sum(r[field] for r in results[key])

    def flags(key: str) -> str:
        repeated = key != "single repeated" and any(r["repeated"] for r in results[key])
        return " (REPEATED BODIES: the run outlasted the bodies made)" if repeated else ""

    by_round = round_ratios(results)
    ratios = {k: statistics.median(v) for k, v in by_round.items()}
    csv_off = med("csv off", "rps") * 1000
    print(
        f"\nwrk -t{SINGLE_THREADS} -c{args.connections}, {args.duration:g} s per single-record run, "
        f"{args.repeats} interleaved "
        f"rounds (floor, off, floor, on, floor, on, floor, off, ..., floor); "
        f"CSV: ABBA rounds, wrk -t{CSV_THREADS} -c4, "
        f"{args.batch_duration:g} s; "
        f"{os.cpu_count()} cores shared with wrk; data: {data.name}"
        f"{' (known values only)' if args.known_only else ''}; load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after. Medians over rounds; requests and errors "
        "summed; each ratio is the median over rounds of the run against its neighbours (a server run "
        "against the floor runs just before and after it, cache on against cache off of the same round).\n"
    )
    print("| scenario | req/s | records/s | p99 ms | requests | errors | server CPU µs/record | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    rows = [
        (
            "single JSON, distinct, cache off",
            "single off",
            f"**{ratios['cache off / floor']:.2f}× constant app**",
        ),
        (
            "single JSON, distinct, cache on (full)",
            "single on",
            f"{ratios['cache on / cache off']:.2f}× cache off, "
            f"{ratios['cache on / floor']:.2f}× constant app",
        ),
        (
            "single JSON, one record repeated, cache on",
            "single repeated",
            f"{med('single repeated', 'rps') / per_run(results, 'floor')[-1]:.2f}× "
            "the constant app run before it",
        ),
        ("constant Flask app, same gunicorn settings", "floor", "1.00"),
        (
            "CSV 1,000 records, distinct, cache off",
            "csv off",
            f"**{csv_off / xgb_rps:.2f}× in-process XGBoost**",
        ),
        (
            "CSV 1,000 records, distinct, cache on (full)",
            "csv on",
            f"{ratios['CSV on / off']:.2f}× cache off",
        ),
    ]
    for title, key, ratio in rows:
        records = med(key, "rps") * (1000 if key.startswith("csv") else 1)
        print(
            f"| {title}{flags(key)} | {med(key, 'rps'):,.0f} | {records:,.0f} "
            f"| {med(key, 'p99_ms'):.1f} | {total(key, 'requests'):,} | {total(key, 'errors')} "
            f"| {med(key, 'cpu_us'):.0f} | {ratio} |"
        )
    print(f"| XGBoost `inplace_predict` in-process, same rows, 1 thread | | {xgb_rps:,.0f} | | | | | 1.00 |")
    print(
        "\nRatios round by round: "
        + "; ".join(f"{k} {' '.join(f'{v:.2f}' for v in vs)}" for k, vs in by_round.items())
    )
    print(
        "\nRSS (all processes): "
        + ", ".join(f"{s.name} {s.rss:.0f} MB (exit {s.code})" for s in servers.values())
        + f"; startup to /ping 200: {servers['off'].startup_s:.1f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
