"""Protocol v1 parsing and the token bucket, on their own."""

from __future__ import annotations

import pytest

from realtime.protocol import ProtocolError, TokenBucket, error_frame, parse_frame


def test_parses_each_client_type_with_defaults():
    assert parse_frame('{"type": "job.list"}').fields == {"limit": 20}
    start = parse_frame('{"type": "job.start", "kind": "simulated", "request_id": "r"}')
    assert (start.request_id, start.fields) == ("r", {"kind": "simulated", "params": {}, "idempotency_key": None})
    assert parse_frame('{"type": "job.cancel", "job_id": "x"}').fields == {"job_id": "x"}


@pytest.mark.parametrize(
    ("text", "code", "rid"),
    [
        ("", "invalid_json", None),
        ('"just a string"', "invalid_message", None),
        ('{"request_id": 5, "type": "job.list"}', "invalid_message", None),
        ('{"request_id": "q", "type": "job.nope"}', "unknown_type", "q"),
        ('{"request_id": "q", "type": "job.subscribe"}', "invalid_message", "q"),
        ('{"type": "job.start", "kind": ""}', "invalid_message", None),
        ('{"type": "job.list", "limit": true}', "invalid_message", None),
        ('{"type": "job.list", "limit": 101}', "invalid_message", None),
        ("[" * 100_000, "invalid_json", None),
    ],
)
def test_bad_frames_raise_protocol_errors_with_codes(text, code, rid):
    with pytest.raises(ProtocolError) as info:
        parse_frame(text)
    assert (info.value.code, info.value.request_id) == (code, rid)
    assert info.value.message


def test_error_frame_shape():
    assert error_frame("not_found", "m", "r") == {
        "type": "error",
        "code": "not_found",
        "message": "m",
        "request_id": "r",
    }
    assert error_frame("invalid_params", "m", None, {"a": ["b"]})["fields"] == {"a": ["b"]}


def test_token_bucket_allows_burst_then_rate():
    now = [0.0]
    bucket = TokenBucket(burst=3, rate=2.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one token back at 2 per second
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] = 100.0  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3
