"""Typed views of what a Baton node answers.

Each model mirrors one schema of the node's OpenAPI document (``GET /openapi.json``):
field names are the JSON property names, field types the JSON types. The mirrored
schema is named in each class's ``__schema__``. Fields the node adds later are kept in
``raw`` (the whole JSON object as received) until a model names them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import (
    Any,
    ClassVar,
    Dict,
    Generic,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Type,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

__all__ = [
    "TaskStatus",
    "EventKind",
    "WorkflowStatus",
    "StepState",
    "OnFailure",
    "CacheMode",
    "Priority",
    "FINAL_STATUSES",
    "TaskError",
    "Lease",
    "Task",
    "Submission",
    "TaskResult",
    "CancelResult",
    "TaskEvent",
    "WorkflowEvent",
    "LogLine",
    "LogPage",
    "WorkflowProgress",
    "WorkflowStep",
    "Workflow",
    "WorkflowResult",
    "Server",
    "Tool",
    "Page",
    "parse_timestamp",
]

TaskStatus = Literal["pending", "running", "input_required", "completed", "failed", "cancelled"]
"""A task's status (schema ``TaskStatus``)."""

EventKind = Literal[
    "created",
    "started",
    "progress",
    "input_required",
    "input_received",
    "cancel_requested",
    "retry_scheduled",
    "lease_expired",
    "released",
    "retried",
    "reprioritized",
    "completed",
    "failed",
    "cancelled",
]
"""What a task event records (schema ``EventKind``)."""

WorkflowStatus = Literal["running", "completed", "failed", "cancelled"]
"""A workflow's overall status (schema ``WorkflowStatus``)."""

StepState = Literal["pending", "running", "completed", "failed", "cancelled", "skipped"]
"""Where one workflow step is (schema ``StepState``)."""

OnFailure = Literal["fail_fast", "continue"]
"""What a failed step does to the rest of its workflow (schema ``OnFailure``)."""

CacheMode = Literal["use", "refresh", "bypass"]
"""What a submission does with the result cache (schema ``CacheMode``)."""

Priority = Union[Literal["low", "normal", "high"], int]
"""``low``, ``normal``, ``high``, or 0 to 100 (schema ``Priority``)."""

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
"""The statuses a task never leaves (unless retried)."""

_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware ``datetime`` (fractions past microseconds
    are dropped)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


M = TypeVar("M", bound="Model")
T = TypeVar("T")

_NONE_TYPE = type(None)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` (decoded JSON) as the annotation ``tp`` declares it."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Union:
        args = get_args(tp)
        if value is None:
            if _NONE_TYPE in args:
                return None
            raise TypeError(f"{where}: null where a value is required")
        inner = [a for a in args if a is not _NONE_TYPE]
        if len(inner) == 1:
            return _convert(inner[0], value, where)
        return value
    if value is None:
        raise TypeError(f"{where}: null where a value is required")
    if origin is Literal:
        return value
    if origin in (list, List):
        (item,) = get_args(tp) or (Any,)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        args = get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is datetime:
        return parse_timestamp(value)
    if tp is float:
        return float(value)
    if isinstance(tp, type) and issubclass(tp, Model):
        return tp.from_dict(value)
    return value


@dataclass(frozen=True)
class Model:
    """Base of the models: built from a JSON object with :meth:`from_dict`."""

    __schema__: ClassVar[str] = ""
    _hints: ClassVar[Dict[str, Any]]

    @classmethod
    def _field_types(cls) -> Dict[str, Any]:
        hints = cls.__dict__.get("_hints")
        if hints is None:
            hints = get_type_hints(cls)
            cls._hints = hints
        return hints

    @classmethod
    def api_fields(cls) -> Dict[str, Any]:
        """The fields that mirror schema properties, with their annotations."""
        types = cls._field_types()
        return {
            f.name: types[f.name]
            for f in dataclasses.fields(cls)
            if f.metadata.get("api", True)
        }

    @classmethod
    def from_dict(cls: Type[M], data: Mapping[str, Any]) -> M:
        """The model from a decoded JSON object; unknown keys stay in ``raw``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {data!r}")
        kwargs: Dict[str, Any] = {}
        for name, tp in cls.api_fields().items():
            if name in data:
                kwargs[name] = _convert(tp, data[name], f"{cls.__name__}.{name}")
        kwargs["raw"] = dict(data)
        return cls(**kwargs)


def _raw() -> Any:
    return field(default_factory=dict, repr=False, compare=False, metadata={"api": False})


@dataclass(frozen=True)
class TaskError(Model):
    """Why a task failed. ``code`` is machine-readable (``tool_error``, ``timeout``,
    ``lease_expired``, ``upstream_unavailable``...), ``message`` is for people."""

    __schema__: ClassVar[str] = "TaskError"
    code: str
    message: str
    retryable: bool
    data: Any = None
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class Lease(Model):
    """Who holds a running task."""

    __schema__: ClassVar[str] = "LeaseView"
    worker: str
    expires_at: datetime
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class Task(Model):
    """A task (``GET /v1/tasks/{id}``, and each item of a task list)."""

    __schema__: ClassVar[str] = "Linked"
    task_id: str
    tool: str
    arguments: Any
    queue: str
    priority: int
    status: TaskStatus
    attempt: int
    max_attempts: int
    run_at: datetime
    owner: str
    created_at: datetime
    updated_at: datetime
    cancel_requested: bool
    poll_url: str
    cancel_url: str
    result_url: str
    events_url: str
    metadata: Any = None
    result: Any = None
    error: Optional[TaskError] = None
    progress: Optional[float] = None
    progress_message: Optional[str] = None
    started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    estimated_completion: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    timeout_ms: Optional[int] = None
    lease: Optional[Lease] = None
    idempotency_key: Optional[str] = None
    group_key: Optional[str] = None
    input_requests: Any = None
    workflow_id: Optional[str] = None
    step_id: Optional[str] = None
    parent_id: Optional[str] = None
    children: Optional[List[str]] = None
    cached_from: Optional[str] = None
    waiting_for: Optional[str] = None
    waiting_reason: Optional[str] = None
    archived: bool = False
    raw: Dict[str, Any] = _raw()

    @property
    def id(self) -> str:
        return self.task_id

    @property
    def is_final(self) -> bool:
        """Whether it reached ``completed``, ``failed`` or ``cancelled``."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class Submission(Model):
    """The answer to a submission (``POST /v1/tasks``)."""

    __schema__: ClassVar[str] = "Accepted"
    task_id: str
    status: TaskStatus
    created: bool
    """``False`` when an idempotency key matched an existing task."""
    created_at: datetime
    run_at: datetime
    poll_url: str
    cancel_url: str
    result_url: str
    events_url: str
    expires_at: Optional[datetime] = None
    cached_from: Optional[str] = None
    waiting_for: Optional[str] = None
    raw: Dict[str, Any] = _raw()

    @property
    def id(self) -> str:
        return self.task_id


@dataclass(frozen=True)
class TaskResult(Model):
    """A task's outcome (``GET /v1/tasks/{id}/result``)."""

    __schema__: ClassVar[str] = "ResultView"
    task_id: str
    status: TaskStatus
    finished: bool
    attempt: int
    result: Any = None
    error: Optional[TaskError] = None
    progress: Optional[float] = None
    progress_message: Optional[str] = None
    completed_at: Optional[datetime] = None
    cached_from: Optional[str] = None
    raw: Dict[str, Any] = _raw()

    def unwrap(self) -> Any:
        """The tool's result; raises :class:`~baton_client.TaskFailed` if the task
        failed, :class:`~baton_client.TaskCancelled` if it was cancelled, and
        :class:`~baton_client.TaskNotFinished` if it is still going."""
        from .errors import TaskCancelled, TaskFailed, TaskNotFinished

        if self.status == "completed":
            return self.result
        if self.status == "failed":
            raise TaskFailed(self.task_id, self.error)
        if self.status == "cancelled":
            raise TaskCancelled(self.task_id, self.error)
        raise TaskNotFinished(self.task_id, self.status)


@dataclass(frozen=True)
class CancelResult(Model):
    """The answer to a cancellation (``DELETE /v1/tasks/{id}``)."""

    __schema__: ClassVar[str] = "CancelAnswer"
    task_id: str
    status: TaskStatus
    cancel_requested: bool
    message: str
    poll_url: str
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class TaskEvent(Model):
    """One event of a task's stream (``GET /v1/tasks/{id}/events``): a state change or
    a progress report. The final event carries the task's ``result`` or ``error``.

    The stream's events have no schema of their own in the OpenAPI document; they are
    the entries of a workflow's timeline (``TimelineEntry``) without ``step_id``."""

    __schema__: ClassVar[str] = "TimelineEntry"
    seq: int
    task_id: str
    at: datetime
    kind: EventKind
    status: TaskStatus
    attempt: Optional[int] = None
    progress: Optional[float] = None
    message: Optional[str] = None
    data: Any = None
    result: Any = field(default=None, metadata={"event_only": True})
    error: Optional[TaskError] = field(default=None, metadata={"event_only": True})
    raw: Dict[str, Any] = _raw()

    @property
    def is_final(self) -> bool:
        """Whether it put the task in a final state (the stream ends after it)."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class WorkflowEvent(TaskEvent):
    """One entry of a workflow's timeline (``GET /v1/workflows/{id}/timeline``): a task
    event of one of its steps."""

    __schema__: ClassVar[str] = "TimelineEntry"
    step_id: str = ""


@dataclass(frozen=True)
class LogLine(Model):
    """A line a task's tool logged."""

    __schema__: ClassVar[str] = "LogLine"
    seq: int
    task_id: str
    attempt: int
    at: datetime
    level: str
    data: Any
    logger: Optional[str] = None
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class LogPage(Model):
    """A page of a task's log (``GET /v1/tasks/{id}/logs``)."""

    __schema__: ClassVar[str] = "LogPage"
    logs: List[LogLine]
    next_after: int
    finished: bool
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class WorkflowProgress(Model):
    """Steps done of all, and a fraction that counts running steps' own progress."""

    __schema__: ClassVar[str] = "WorkflowProgress"
    steps_total: int
    steps_completed: int
    steps_finished: int
    steps_running: int
    fraction: float
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class WorkflowStep(Model):
    """One step of a workflow, with its task's state."""

    __schema__: ClassVar[str] = "StepView"
    step_id: str
    tool: str
    state: StepState
    depends_on: List[str] = field(default_factory=list)
    task_id: Optional[str] = None
    task_status: Optional[TaskStatus] = None
    attempt: Optional[int] = None
    progress: Optional[float] = None
    progress_message: Optional[str] = None
    started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    duration_ms: Optional[int] = None
    error: Any = None
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class Workflow(Model):
    """A workflow (``GET /v1/workflows/{id}``). Lists leave ``steps`` empty."""

    __schema__: ClassVar[str] = "LinkedWorkflow"
    workflow_id: str
    name: str
    status: WorkflowStatus
    on_failure: OnFailure
    owner: str
    progress: WorkflowProgress
    created_at: datetime
    updated_at: datetime
    poll_url: str
    cancel_url: str
    dag_url: str
    timeline_url: str
    result_url: str
    steps: List[WorkflowStep] = field(default_factory=list)
    completed_at: Optional[datetime] = None
    error: Any = None
    archived: bool = False
    raw: Dict[str, Any] = _raw()

    @property
    def id(self) -> str:
        return self.workflow_id

    @property
    def is_final(self) -> bool:
        return self.status != "running"

    def step(self, step_id: str) -> WorkflowStep:
        """The step with this id (``KeyError`` if there is none)."""
        for s in self.steps:
            if s.step_id == step_id:
                return s
        raise KeyError(step_id)


@dataclass(frozen=True)
class WorkflowResult(Model):
    """A workflow's outcome: the results of its final steps, by step id."""

    __schema__: ClassVar[str] = "WorkflowResult"
    workflow_id: str
    status: WorkflowStatus
    progress: WorkflowProgress
    outputs: Dict[str, Any]
    error: Any = None
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class Server(Model):
    """An MCP server as the node sees it (``GET /v1/servers``)."""

    __schema__: ClassVar[str] = "ServerStatus"
    name: str
    transport: str
    origin: Literal["config", "api"]
    state: str
    tags: List[str]
    since: datetime
    tasks: str
    tool_count: int
    tools: List[str]
    in_flight: int
    calls: int
    failures: int
    error_rate: float
    latency_ms: float
    consecutive_failures: int
    config: Any
    group: Optional[str] = None
    last_error: Optional[str] = None
    protocol_version: Optional[str] = None
    server_info: Any = None
    pid: Optional[int] = None
    circuit_open_for_ms: Optional[int] = None
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class Tool(Model):
    """One tool of the catalog (``GET /v1/tools``)."""

    __schema__: ClassVar[str] = "ToolEntry"
    name: str
    server: str
    input_schema: Any
    description: Optional[str] = None
    raw: Dict[str, Any] = _raw()


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` as ``cursor`` for the
    next one (``None`` on the last page). Iterating a page yields its items."""

    items: List[T]
    next_cursor: Optional[str] = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def duration_ms(value: Union[float, timedelta, None]) -> Optional[int]:
    """Seconds (or a ``timedelta``) as whole milliseconds."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    return int(round(seconds * 1000))
