"""The SDK's own parsing, without a node: error bodies as exceptions for the statuses a
test node does not readily answer with, the event-stream decoder, timestamps, request
bodies."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional, Type

import httpx
import pytest

from baton_client import (
    BatonError,
    Conflict,
    Forbidden,
    RateLimited,
    ServerError,
    TaskEvent,
    Unauthorized,
    Unavailable,
)
from baton_client import _api
from baton_client.models import LogLine, parse_timestamp


def error_response(
    status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None
) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": {"code": code, "message": message}},
        headers=headers or {},
    )


@pytest.mark.parametrize(
    "status,code,cls",
    [
        (401, "unauthenticated", Unauthorized),
        (403, "permission_denied", Forbidden),
        (409, "conflict", Conflict),
        (429, "resource_exhausted", RateLimited),
        (503, "unavailable", Unavailable),
        (500, "internal", ServerError),
        (418, "teapot", BatonError),
    ],
)
def test_error_answers_become_their_exceptions(
    status: int, code: str, cls: Type[BatonError]
) -> None:
    with pytest.raises(BatonError) as raised:
        _api.raise_for_error(error_response(status, code, f"the {code} message"))
    assert type(raised.value) is cls
    assert raised.value.status == status
    assert raised.value.code == code
    assert raised.value.message == f"the {code} message"


def test_retry_after_is_read_from_the_header() -> None:
    with pytest.raises(RateLimited) as raised:
        _api.raise_for_error(
            error_response(429, "resource_exhausted", "slow down", {"Retry-After": "7"})
        )
    assert raised.value.retry_after == 7.0
    with pytest.raises(Unavailable) as unavailable:
        _api.raise_for_error(error_response(503, "unavailable", "draining"))
    assert unavailable.value.retry_after is None


def test_an_error_without_a_json_body_keeps_its_text() -> None:
    with pytest.raises(ServerError) as raised:
        _api.raise_for_error(httpx.Response(502, text="bad gateway from a proxy"))
    assert raised.value.message == "bad gateway from a proxy"
    assert raised.value.code == "unknown"


def test_success_answers_raise_nothing() -> None:
    _api.raise_for_error(httpx.Response(202, json={}))


def decode(text: str) -> List[_api.SSEMessage]:
    decoder = _api.SSEDecoder()
    out = []
    for line in text.split("\n"):
        message = decoder.feed(line)
        if message is not None:
            out.append(message)
    return out


def test_the_event_stream_decoder() -> None:
    stream = (
        ": keep-alive\n"
        "\n"
        "id: 4\n"
        "event: progress\n"
        "data: {\"a\":\n"
        "data: 1}\n"
        "\n"
        "event: log\r\n"
        "data:{\"b\": 2}\n"
        "\n"
    )
    messages = decode(stream)
    assert [(m.event, m.data, m.id) for m in messages] == [
        ("progress", '{"a":\n1}', "4"),
        ("log", '{"b": 2}', None),
    ]


def test_stream_messages_become_models() -> None:
    event = _api.decode_event(
        _api.SSEMessage(
            "completed",
            '{"seq": 9, "task_id": "t", "at": "2026-01-02T03:04:05.123456789Z", '
            '"kind": "completed", "status": "completed", "attempt": 1, "result": {"x": 1}, '
            '"later_field": true}',
            "9",
        )
    )
    assert isinstance(event, TaskEvent)
    assert event.is_final and event.result == {"x": 1}
    assert event.raw["later_field"] is True
    line = _api.decode_event(
        _api.SSEMessage(
            "log",
            '{"seq": 3, "task_id": "t", "attempt": 1, "at": "2026-01-02T03:04:05Z", '
            '"level": "info", "data": "hello"}',
            None,
        )
    )
    assert isinstance(line, LogLine) and line.data == "hello" and line.logger is None
    with pytest.raises(BatonError):
        _api.decode_event(_api.SSEMessage("error", "store unreachable", None))


def test_timestamps() -> None:
    assert parse_timestamp("2026-01-02T03:04:05.123456789Z") == datetime(
        2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc
    )
    assert parse_timestamp("2026-01-02T03:04:05+02:00").utcoffset() == timedelta(hours=2)
    assert parse_timestamp("2026-01-02T03:04:05.1Z").microsecond == 100000


def test_submit_bodies() -> None:
    body = _api.submit_body(
        "t__x", {"a": 1}, delay=timedelta(minutes=1), timeout=2.5, ttl=timedelta(hours=1)
    )
    assert body == {
        "tool": "t__x",
        "arguments": {"a": 1},
        "delay_ms": 60_000,
        "timeout_ms": 2_500,
        "ttl_ms": 3_600_000,
    }
    at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert _api.submit_body("t__x", run_at=at)["run_at"] == "2030-01-01T00:00:00+00:00"
    with pytest.raises(ValueError):
        _api.submit_body("t__x", delay=1, run_at=at)
    with pytest.raises(ValueError):
        _api.submit_body("t__x", delay=-1)
    with pytest.raises(ValueError):
        _api.update_body()


def test_ids_are_escaped_in_paths() -> None:
    assert _api.get_task("a/b?c").path == "/v1/tasks/a%2Fb%3Fc"
    with pytest.raises(ValueError):
        _api.get_task("")


def test_workflow_text_is_sent_as_json_or_yaml() -> None:
    as_json = _api.submit_workflow('{"name": "w", "steps": []}')
    assert as_json.json == {"name": "w", "steps": []}
    as_yaml = _api.submit_workflow("name: w\nsteps: []\n")
    assert as_yaml.content == b"name: w\nsteps: []\n"
    assert as_yaml.headers["content-type"] == "application/yaml"
