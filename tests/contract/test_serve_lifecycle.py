"""`serve` start-up and shut-down: /ping 503 without a usable model, start-up time, SIGTERM drains requests.

Each test starts its own short-lived gunicorn (container/serve); the servers of one test start in parallel.
"""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
import requests
from processes import ROOT, ServerProcess, venv_env

GOOD = {"Fecha-I": "2017-01-01 23:30:00", "OPERA": "Grupo LATAM", "TIPOVUELO": "I", "Des-I": "KMIA"}


def start(tmp_path, model_dir, **env) -> ServerProcess:
    return ServerProcess(
        [str(ROOT / "container" / "serve")],
        venv_env(OPT_ML_DIR=str(tmp_path / "opt_ml"), SM_MODEL_DIR=str(model_dir), **env),
        log_dir=tmp_path,
    )


def test_ping_is_503_with_the_reason_when_the_artifact_is_missing_or_corrupt(tmp_path, model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = {"garbage": b"not a booster", "truncated": (model_dir / "booster.ubj").read_bytes()[:1000]}
    servers = {"metadata.json is missing": start(tmp_path, empty)}
    for name, booster in broken.items():  # a cut booster can make libxgboost hang: refused before parsing
        folder = tmp_path / name
        folder.mkdir()
        for f in model_dir.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        (folder / "booster.ubj").write_bytes(booster)
        servers[f"{name}: booster.ubj in {folder} is truncated or altered"] = start(tmp_path, folder)
    try:
        for reason, server in servers.items():
            response = server.wait_ping(deadline_s=30, expect=503)
            error = response.json()["error"]
            assert error["code"] == "model_unavailable" and reason.split(": ", 1)[-1] in error["message"], (
                error
            )
            invoked = requests.post(f"{server.url}/invocations", json=GOOD, timeout=10)
            assert invoked.status_code == 503, invoked.text
    finally:
        for server in servers.values():
            assert server.stop() == 0, server.log_tail()


def test_sigterm_lets_an_in_flight_request_finish_then_exits_0(tmp_path, model_dir):
    """The body arrives slowly, so the request is in a worker when SIGTERM reaches gunicorn's master."""
    server = start(tmp_path, model_dir, SCL_PREDICTION_CACHE_SIZE="0")
    rows = "".join(
        f"{GOOD['Fecha-I']},{GOOD['OPERA']},{GOOD['TIPOVUELO']},{GOOD['Des-I']}\n" for _ in range(2000)
    )
    body = rows.encode()
    answer: dict = {}

    def slow_client():
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            s.sendall(body[:1000])
            answer["sent_half"] = time.monotonic()
            time.sleep(1.5)  # SIGTERM arrives meanwhile
            s.sendall(body[1000:])
            data = b""
            while chunk := s.recv(65536):
                data += chunk
                _head, _, rest = data.partition(b"\r\n\r\n")
                if rest and rest.count(b"\n") >= 2000:
                    break
            answer["data"] = data

    try:
        server.wait_ping(deadline_s=30)
        client = threading.Thread(target=slow_client)
        client.start()
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)  # to the master only, as `docker stop` does to PID 1
        client.join(timeout=30)
        code = server.proc.wait(timeout=30)
    finally:
        server.stop()
    data = answer.get("data", b"")
    assert data.startswith(b"HTTP/1.1 200"), f"{data[:300]!r}\n{server.log_tail()}"
    lines = data.partition(b"\r\n\r\n")[2].decode().splitlines()
    assert len(lines) == 2000 and all(line.count(",") == 3 for line in lines)  # p,d,unknown,error
    assert code == 0, server.log_tail()


@pytest.mark.parametrize(
    "env, message",
    [
        ({"MODEL_SERVER_WORKERS": "zero"}, "MODEL_SERVER_WORKERS='zero'"),
        ({"SAGEMAKER_INFERENCE_OUTPUT": "scores"}, "SAGEMAKER_INFERENCE_OUTPUT='scores'"),
    ],
)
def test_serve_refuses_to_start_with_a_bad_setting_and_names_it(tmp_path, model_dir, env, message):
    server = start(tmp_path, model_dir, **env)
    try:
        code = server.proc.wait(timeout=30)
    finally:
        server.stop()
    assert code != 0 and message in server.log_tail(), server.log_tail()


def test_port_is_honoured_when_sagemaker_bind_to_port_is_absent_and_loses_when_both_are_set(
    tmp_path, model_dir
):
    """Cloud Run, ECS and most platforms set PORT; SageMaker sets SAGEMAKER_BIND_TO_PORT, which wins."""
    from processes import free_port

    other = free_port()
    servers = {
        "PORT alone": ServerProcess(
            [str(ROOT / "container" / "serve")],
            venv_env(OPT_ML_DIR=str(tmp_path / "opt_ml"), SM_MODEL_DIR=str(model_dir)),
            port_env="PORT",
            log_dir=tmp_path,
        ),
        "both": start(tmp_path, model_dir, PORT=str(other)),
    }
    try:
        for name, server in servers.items():
            assert server.wait_ping(deadline_s=30).status_code == 200, name
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{other}/ping", timeout=2)
    finally:
        for server in servers.values():
            assert server.stop() == 0, server.log_tail()


def test_max_payload_0_means_no_limit_as_aws_documents_it(tmp_path, model_dir):
    """SageMaker passes SAGEMAKER_MAX_PAYLOAD_IN_MB=0 for MaxPayloadInMB=0 (arbitrarily large, chunked
    bodies)."""
    server = start(tmp_path, model_dir, SAGEMAKER_MAX_PAYLOAD_IN_MB="0", MODEL_SERVER_WORKERS="2")
    try:
        server.wait_ping(deadline_s=30)
        parameters = requests.get(f"{server.url}/execution-parameters", timeout=10).json()
        assert parameters == {
            "MaxConcurrentTransforms": 2,
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": 0,
        }
        line = f"{GOOD['Fecha-I']},{GOOD['OPERA']},{GOOD['TIPOVUELO']},{GOOD['Des-I']}\n".encode()
        chunks = [line * 20_000] * 4  # ~7 MB, chunked: over the 6 MB default
        response = requests.post(
            f"{server.url}/invocations", data=iter(chunks), headers={"Content-Type": "text/csv"}, timeout=60
        )
        assert response.status_code == 200, response.text[:500]
        assert len(response.json()["predictions"]) == 80_000
    finally:
        assert server.stop() == 0, server.log_tail()


def test_without_a_model_every_path_spelling_gets_the_reason_and_nothing_else(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    server = start(tmp_path, empty)
    try:
        server.wait_ping(deadline_s=30, expect=503)
        for path in ("/invocations", "//invocations", "/predict_delay_probability"):
            response = requests.post(f"{server.url}{path}", json=GOOD, timeout=10)
            assert response.status_code == 503, (path, response.text)
            error = response.json()["error"]
            assert error["code"] == "model_unavailable" and "metadata.json is missing" in error["message"]
            assert "LoadedModel" not in response.text and "Predictor" not in response.text
    finally:
        assert server.stop() == 0, server.log_tail()
