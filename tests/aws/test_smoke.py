"""The smoke test's pure parts and its retry loop, with the HTTP call played by a function (no socket):
the end-to-end smoke test through the gateway stand-in runs in test_deploy.py and the rehearsal."""

from __future__ import annotations

import pytest

from scl_delay.aws.smoke import EXECUTE_API_ENDPOINT_ENV, has_probability, local_url, smoke_test

URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/predict"


class _Gw:
    def get_api_key(self, apiKey, includeValue):
        assert includeValue is True
        return {"id": apiKey, "value": "secret-key-value"}


def test_invoke_url_goes_to_the_stand_in_only_when_asked():
    assert local_url(URL, {}) == URL
    assert (
        local_url(URL, {EXECUTE_API_ENDPOINT_ENV: "http://127.0.0.1:9/"})
        == "http://127.0.0.1:9/abc123/prod/predict"
    )


@pytest.mark.parametrize(
    "body, ok",
    [
        ('{"predictions": [{"probability": 0.42, "decision": false}]}', True),
        ('[{"probability": 1}]', True),
        ('{"predictions": [{"probability": 7}]}', False),
        ('{"error": {"code": "invalid_record"}}', False),
        ("not json", False),
        ('{"flag": true}', False),  # a boolean is not a probability
    ],
)
def test_an_answer_passes_only_with_a_probability(body, ok):
    assert has_probability(body) is ok


def test_a_fresh_stage_is_retried_and_the_key_is_sent_but_never_reported():
    answers = iter([(403, '{"message": "Forbidden"}'), (200, '{"predictions": [{"probability": 0.3}]}')])
    sent, sleeps = [], []

    def send(url, body, headers, timeout_s):
        sent.append(headers)
        return next(answers)

    result = smoke_test(_Gw(), URL, "key-id", {}, attempts=3, delay_s=2, sleep=sleeps.append, send=send)
    assert result.ok and result.attempts == 2 and sleeps == [2]
    assert sent[0]["x-api-key"] == "secret-key-value"
    assert "secret-key-value" not in str(result.to_dict())


def test_a_failing_gateway_fails_after_the_attempts_with_the_status():
    result = smoke_test(
        _Gw(),
        URL,
        "k",
        {},
        attempts=2,
        delay_s=0,
        sleep=lambda s: None,
        send=lambda *a: (502, '{"error": {}}'),
    )
    assert not result.ok and result.status == 502 and result.reason == "HTTP 502" and result.attempts == 2
