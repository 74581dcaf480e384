"""The floor for scripts/bench_serve.py: a Flask app that reads the body and returns a constant.

Served by the same gunicorn settings as `serve` (container/gunicorn.conf.py: workers, worker class,
threads, keep-alive), so the ratio server / this app shows what scoring itself costs on top of the HTTP
stack, whatever else is running on the machine.
"""

from flask import Flask, request

app = Flask(__name__)
ANSWER = b'{"predictions":[{"probability":0.5,"delayed":false}]}'


@app.get("/ping")
def ping():
    return ""


@app.post("/invocations")
def invocations():
    request.get_data()  # read the body, as a real handler must
    return ANSWER, 200, {"Content-Type": "application/json"}
