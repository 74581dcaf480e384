"""Gunicorn settings for `serve`, from ServeSettings.from_env(); no app logic here.

Env: SAGEMAKER_BIND_TO_PORT, else PORT (Cloud Run, ECS, most platforms), else 8080;
MODEL_SERVER_WORKERS / SAGEMAKER_MODEL_SERVER_WORKERS (one per core), MODEL_SERVER_TIMEOUT /
SAGEMAKER_MODEL_SERVER_TIMEOUT (gunicorn's worker timeout in seconds, 60), SCL_WORKER_CLASS,
SCL_WORKER_THREADS.

Worker class, by measurement (scripts/bench_serve.py, 2 cores shared with wrk -t2 -c32, single-record JSON;
the machine was also busy with other work, so absolute numbers are noisy): gthread 2,200-3,950 req/s with 1-4
threads, 500-2,840 with 8 (GIL contention); sync 700-2,470 (no keep-alive: every request pays a new
connection, as API Gateway and load tools would); gevent 1,900-2,450 with p99 of 0.5-3 s (one greedy
greenlet loop). gthread keeps connections alive (keepalive below). Threads per worker default to one more
than the MaxConcurrentTransforms advertised at /execution-parameters (3 on 2 cores), so that a thread stays
free for /ping even if all of Batch Transform's concurrent requests land on one worker. Single-record
throughput measured alike with 2 and 3 (README). gthread comes as ``balanced_accept.BalancedThreadWorker``:
gunicorn does not balance connections between workers, and a client opening its connections in one burst
could put them all on one worker.
"""

import json
import os
import socket
import sys
from pathlib import Path

import gunicorn.util

# Must precede the first XGBoost import (preload_app imports serve.py in the master).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:  # installed (the image, `make setup`); else run from a source tree copied to e.g. /opt/program
    import scl_delay  # noqa: F401
except ImportError:
    pythonpath = str(Path(__file__).resolve().parents[1] / "src")
    sys.path.insert(0, pythonpath)

from scl_delay import balanced_accept, malloc_tuning
from scl_delay.errors import SettingsError, error_document
from scl_delay.settings import BIND_PORT, ServeSettings

_CHECKED = "SCL_SERVE_PORT_CHECKED"  # a HUP reload re-reads this file while the master holds the port


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is no conflict
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


# One line and exit 1, not gunicorn's traceback (a bad value) or its five bind retries (a busy port).
# SystemExit passes through gunicorn's config loader, which catches Exception.
try:
    _settings = ServeSettings.from_env()
except SettingsError as e:
    sys.exit(f"serve: {e}")
if not os.environ.get(_CHECKED) and _port_taken(_settings.port):
    sys.exit(f"serve: port {_settings.port} is in use; stop what listens there or set {BIND_PORT[0]}")
os.environ[_CHECKED] = "1"
if not malloc_tuning.keep_freed_memory():  # in the master, before the fork: the workers inherit it
    print("serve: glibc's mallopt is unavailable; large batches pay page faults per request", file=sys.stderr)

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.workers
worker_class = (
    balanced_accept.BalancedThreadWorker if _settings.worker_class == "gthread" else _settings.worker_class
)
pre_fork, child_exit = balanced_accept.pre_fork, balanced_accept.child_exit  # the table of who holds what
threads = _settings.threads
timeout = _settings.timeout_s
graceful_timeout = 20  # SageMaker allows 30 s after SIGTERM; in-flight requests get 20 of them
keepalive = 75  # longer than the idle timeout of load balancers in front (ALB 60 s), so they close first
preload_app = True  # load the model once, share it copy-on-write
# The worker heartbeat touches a file twice per request; on a container's overlay /tmp that can block and is
# slow (gunicorn's docs advise /dev/shm in containers). tmpfs keeps it in memory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
backlog = 2048
accesslog = None
errorlog = "-"
loglevel = os.environ.get("SCL_LOG_LEVEL", "info")
limit_request_line = 8190
control_socket_disable = True  # gunicorn 25's runtime-management socket: nothing here should be managed live


def _json_error_page(sock, status_int, reason, mesg):
    """gunicorn's own error answers (a request it cannot parse: bad request line, headers too large, bad
    chunking) as the app's JSON error body instead of HTML. gunicorn writes these itself, before the app runs;
    it has no hook for them, so its writer is replaced here. What gunicorn answers with no body at all (a
    worker killed on timeout, a connection it drops) stays without one."""
    code = reason.lower().replace(" ", "_")
    body = json.dumps(error_document(code, mesg or reason)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = _json_error_page
