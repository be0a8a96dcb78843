"""What the sync and async clients share: each REST call as data (method, path,
parameters, body, and how to read the answer), error answers as exceptions, and the
Server-Sent Events decoder. No I/O happens here."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)
from urllib.parse import quote

import httpx

from ._version import __version__
from .errors import BatonError, error_class
from .models import (
    CacheMode,
    CancelResult,
    LogLine,
    LogPage,
    Page,
    Priority,
    Server,
    Submission,
    Task,
    TaskEvent,
    TaskResult,
    Tool,
    Workflow,
    WorkflowEvent,
    WorkflowResult,
    duration_ms,
)

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:7420"
DEFAULT_TIMEOUT = 30.0
#: The longest long-poll the node accepts, in seconds.
MAX_WAIT = 300

Duration = Union[float, timedelta]
"""Seconds, or a ``timedelta``."""


def resolve_config(
    base_url: Optional[str], api_key: Optional[str], headers: Optional[Mapping[str, str]]
) -> Tuple[str, Dict[str, str]]:
    """The base URL and default headers, from the arguments or the environment
    (``BATON_URL``; ``BATON_API_KEY``, else ``BATON_TOKEN`` as the CLI reads it)."""
    url = base_url or os.environ.get("BATON_URL") or DEFAULT_URL
    if api_key is None:
        api_key = os.environ.get("BATON_API_KEY") or os.environ.get("BATON_TOKEN")
    key = api_key
    merged = {"accept": "application/json", "user-agent": f"baton-client-python/{__version__}"}
    if key:
        merged["authorization"] = f"Bearer {key}"
    merged.update({k.lower(): v for k, v in (headers or {}).items()})
    return url.rstrip("/"), merged


_NO_BODY: Any = object()


@dataclass
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Dict[str, Any] = field(default_factory=dict)
    json: Any = _NO_BODY
    content: Optional[bytes] = None
    headers: Dict[str, str] = field(default_factory=dict)
    #: Seconds the node may hold the answer (a long-poll): added to the read timeout.
    hold: float = 0.0

    def request_kwargs(self) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {
            "params": {k: _param(v) for k, v in self.params.items() if v is not None},
            "headers": dict(self.headers),
        }
        if self.json is not _NO_BODY:
            kwargs["content"] = json.dumps(self.json).encode()
            kwargs["headers"]["content-type"] = "application/json"
        elif self.content is not None:
            kwargs["content"] = self.content
        return kwargs

    def timeout(self, base: Optional[float]) -> httpx.Timeout:
        if base is None:
            return httpx.Timeout(None)
        return httpx.Timeout(base, read=base + self.hold)


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _id(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"an id must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def raise_for_error(response: httpx.Response) -> None:
    """Raises the :class:`BatonError` an error answer (4xx/5xx) stands for."""
    if response.status_code < 400:
        return
    code, message, details = "unknown", "", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code", code))
        message = str(err.get("message", ""))
        details = err.get("details")
    if not message:
        message = response.text.strip() or response.reason_phrase or "error"
    cls = error_class(response.status_code, code)
    raise cls(
        message,
        code=code,
        status=response.status_code,
        details=details,
        headers={k.lower(): v for k, v in response.headers.items()},
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as e:
        raise BatonError(
            f"the node answered {response.status_code} with a body that is not JSON: "
            f"{response.text[:200]!r}",
            code="bad_response",
            status=response.status_code,
        ) from e


def _rfc3339(value: Union[datetime, str]) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


# ---- tasks -------------------------------------------------------------------------


def submit_body(
    tool: str,
    arguments: Optional[Mapping[str, Any]] = None,
    *,
    priority: Optional[Priority] = None,
    queue: Optional[str] = None,
    idempotency_key: Optional[str] = None,
    delay: Optional[Duration] = None,
    run_at: Union[datetime, str, None] = None,
    timeout: Optional[Duration] = None,
    max_attempts: Optional[int] = None,
    ttl: Optional[Duration] = None,
    group_key: Optional[str] = None,
    cache: Optional[CacheMode] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    callback_url: Optional[str] = None,
) -> Dict[str, Any]:
    """The body of ``POST /v1/tasks`` (a ``SubmitRequest``)."""
    if delay is not None and run_at is not None:
        raise ValueError("give delay or run_at, not both")
    body: Dict[str, Any] = {"tool": tool, "arguments": dict(arguments or {})}
    optional: Dict[str, Any] = {
        "priority": priority,
        "queue": queue,
        "idempotency_key": idempotency_key,
        "delay_ms": duration_ms(delay),
        "run_at": _rfc3339(run_at) if run_at is not None else None,
        "timeout_ms": duration_ms(timeout),
        "max_attempts": max_attempts,
        "ttl_ms": duration_ms(ttl),
        "group_key": group_key,
        "cache": cache,
        "metadata": dict(metadata) if metadata is not None else None,
        "callback_url": callback_url,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def submit(body: Dict[str, Any]) -> Call[Submission]:
    return Call(
        "POST", "/v1/tasks", lambda r: Submission.from_dict(_json(r)), json=body
    )


def submit_batch(bodies: Sequence[Dict[str, Any]]) -> Call[List[Submission]]:
    return Call(
        "POST",
        "/v1/tasks/batch",
        lambda r: [Submission.from_dict(t) for t in _json(r)["tasks"]],
        json={"tasks": list(bodies)},
    )


def get_task(task_id: str) -> Call[Task]:
    return Call("GET", f"/v1/tasks/{_id(task_id)}", lambda r: Task.from_dict(_json(r)))


def _task_page(response: httpx.Response) -> Page[Task]:
    body = _json(response)
    return Page([Task.from_dict(t) for t in body["tasks"]], body.get("next_cursor"))


def list_tasks(
    *,
    status: Union[str, Sequence[str], None] = None,
    tool: Optional[str] = None,
    queue: Optional[str] = None,
    workflow_id: Optional[str] = None,
    parent_id: Optional[str] = None,
    limit: Optional[int] = None,
    cursor: Optional[str] = None,
) -> Call[Page[Task]]:
    if status is not None and not isinstance(status, str):
        status = ",".join(status)
    params = {
        "status": status,
        "tool": tool,
        "queue": queue,
        "workflow_id": workflow_id,
        "parent_id": parent_id,
        "limit": limit,
        "cursor": cursor,
    }
    return Call("GET", "/v1/tasks", _task_page, params=params)


def cancel(task_id: str) -> Call[CancelResult]:
    return Call(
        "DELETE", f"/v1/tasks/{_id(task_id)}", lambda r: CancelResult.from_dict(_json(r))
    )


def retry(task_id: str) -> Call[Task]:
    return Call(
        "POST", f"/v1/tasks/{_id(task_id)}/retry", lambda r: Task.from_dict(_json(r))
    )


def update_body(
    *,
    priority: Optional[Priority] = None,
    delay: Optional[Duration] = None,
    run_at: Union[datetime, str, None] = None,
) -> Dict[str, Any]:
    """The body of ``PATCH /v1/tasks/{id}`` (a ``TaskUpdate``)."""
    if delay is not None and run_at is not None:
        raise ValueError("give delay or run_at, not both")
    body: Dict[str, Any] = {}
    if priority is not None:
        body["priority"] = priority
    if delay is not None:
        body["delay_ms"] = duration_ms(delay)
    if run_at is not None:
        body["run_at"] = _rfc3339(run_at)
    if not body:
        raise ValueError("nothing to change: give priority, delay or run_at")
    return body


def update(task_id: str, body: Dict[str, Any]) -> Call[Task]:
    return Call(
        "PATCH", f"/v1/tasks/{_id(task_id)}", lambda r: Task.from_dict(_json(r)), json=body
    )


def wait_seconds(wait: Optional[float]) -> Optional[int]:
    """A long-poll's ``wait`` parameter: whole seconds, at most :data:`MAX_WAIT`."""
    if wait is None:
        return None
    return max(0, min(MAX_WAIT, int(math.ceil(wait))))


def result(task_id: str, wait: Optional[float] = None) -> Call[TaskResult]:
    seconds = wait_seconds(wait)
    return Call(
        "GET",
        f"/v1/tasks/{_id(task_id)}/result",
        lambda r: TaskResult.from_dict(_json(r)),
        params={"wait": seconds},
        hold=float(seconds or 0),
    )


def respond(task_id: str, responses: Mapping[str, Any]) -> Call[Task]:
    return Call(
        "POST",
        f"/v1/tasks/{_id(task_id)}/input",
        lambda r: Task.from_dict(_json(r)),
        json={"responses": dict(responses)},
    )


def logs(
    task_id: str,
    *,
    after: Optional[int] = None,
    limit: Optional[int] = None,
    wait: Optional[float] = None,
) -> Call[LogPage]:
    seconds = wait_seconds(wait)
    return Call(
        "GET",
        f"/v1/tasks/{_id(task_id)}/logs",
        lambda r: LogPage.from_dict(_json(r)),
        params={"after": after, "limit": limit, "wait": seconds},
        hold=float(seconds or 0),
    )


def events_request(
    task_id: str, *, last_event_id: Optional[int], logs: bool, logs_after: Optional[int]
) -> Tuple[str, Dict[str, Any], Dict[str, str]]:
    """Path, parameters and headers of ``GET /v1/tasks/{id}/events``."""
    headers = {"accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = str(last_event_id)
    params: Dict[str, Any] = {"logs": "true" if logs else "false"}
    if logs and logs_after is not None:
        params["logs_after"] = logs_after
    return f"/v1/tasks/{_id(task_id)}/events", params, headers


# ---- workflows ---------------------------------------------------------------------


def submit_workflow(definition: Union[Mapping[str, Any], str, bytes]) -> Call[Workflow]:
    parse = lambda r: Workflow.from_dict(_json(r))  # noqa: E731
    if isinstance(definition, Mapping):
        return Call("POST", "/v1/workflows", parse, json=dict(definition))
    text = definition.decode() if isinstance(definition, bytes) else definition
    try:
        as_json = json.loads(text)
    except ValueError:
        as_json = _NO_BODY
    if isinstance(as_json, dict):
        return Call("POST", "/v1/workflows", parse, json=as_json)
    return Call(
        "POST",
        "/v1/workflows",
        parse,
        content=text.encode(),
        headers={"content-type": "application/yaml"},
    )


def get_workflow(workflow_id: str) -> Call[Workflow]:
    return Call(
        "GET", f"/v1/workflows/{_id(workflow_id)}", lambda r: Workflow.from_dict(_json(r))
    )


def cancel_workflow(workflow_id: str) -> Call[Workflow]:
    return Call(
        "DELETE", f"/v1/workflows/{_id(workflow_id)}", lambda r: Workflow.from_dict(_json(r))
    )


def retry_workflow(workflow_id: str) -> Call[Workflow]:
    return Call(
        "POST",
        f"/v1/workflows/{_id(workflow_id)}/retry",
        lambda r: Workflow.from_dict(_json(r)),
    )


def workflow_result(workflow_id: str, wait: Optional[float] = None) -> Call[WorkflowResult]:
    seconds = wait_seconds(wait)
    return Call(
        "GET",
        f"/v1/workflows/{_id(workflow_id)}/result",
        lambda r: WorkflowResult.from_dict(_json(r)),
        params={"wait": seconds},
        hold=float(seconds or 0),
    )


def _workflow_page(response: httpx.Response) -> Page[Workflow]:
    body = _json(response)
    return Page(
        [Workflow.from_dict(w) for w in body["workflows"]], body.get("next_cursor")
    )


def list_workflows(
    *,
    status: Optional[str] = None,
    limit: Optional[int] = None,
    cursor: Optional[str] = None,
) -> Call[Page[Workflow]]:
    return Call(
        "GET",
        "/v1/workflows",
        _workflow_page,
        params={"status": status, "limit": limit, "cursor": cursor},
    )


def workflow_timeline(workflow_id: str) -> Call[List[WorkflowEvent]]:
    return Call(
        "GET",
        f"/v1/workflows/{_id(workflow_id)}/timeline",
        lambda r: [WorkflowEvent.from_dict(e) for e in _json(r)["events"]],
    )


def workflow_dag(workflow_id: str, format: str = "json") -> Call[Any]:
    if format not in ("json", "dot", "mermaid"):
        raise ValueError(f"format must be json, dot or mermaid, not {format!r}")

    def parse(r: httpx.Response) -> Any:
        return _json(r) if format == "json" else r.text

    return Call(
        "GET", f"/v1/workflows/{_id(workflow_id)}/dag", parse, params={"format": format}
    )


# ---- servers and tools -------------------------------------------------------------


def servers(tag: Optional[str] = None) -> Call[List[Server]]:
    return Call(
        "GET",
        "/v1/servers",
        lambda r: [Server.from_dict(s) for s in _json(r)["servers"]],
        params={"tag": tag},
    )


def tools() -> Call[List[Tool]]:
    return Call("GET", "/v1/tools", lambda r: [Tool.from_dict(t) for t in _json(r)["tools"]])


# ---- waiting -----------------------------------------------------------------------


class Deadline:
    """The caller's time limit for a wait (``None``: none)."""

    def __init__(self, timeout: Optional[Duration]) -> None:
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        self.timeout = timeout
        self.end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> Optional[float]:
        if self.end is None:
            return None
        return max(0.0, self.end - time.monotonic())

    def next_wait(self) -> float:
        """How long the next long-poll may hold (at most :data:`MAX_WAIT`)."""
        left = self.remaining()
        return float(MAX_WAIT) if left is None else min(float(MAX_WAIT), left)

    def passed(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0


# ---- Server-Sent Events ------------------------------------------------------------


@dataclass
class SSEMessage:
    event: str
    data: str
    id: Optional[str]


class SSEDecoder:
    """Turns the lines of a ``text/event-stream`` into messages."""

    def __init__(self) -> None:
        self._event = ""
        self._data: List[str] = []
        self._id: Optional[str] = None

    def feed(self, line: str) -> Optional[SSEMessage]:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data and not self._event:
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def decode_event(message: SSEMessage) -> Union[TaskEvent, LogLine, None]:
    """A stream message as a model; ``None`` for what is not an event."""
    if message.event == "error":
        raise BatonError(message.data or "the event stream failed", code="stream_error")
    if not message.data:
        return None
    data = json.loads(message.data)
    if message.event == "log":
        return LogLine.from_dict(data)
    return TaskEvent.from_dict(data)
