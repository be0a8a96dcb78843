"""Exceptions: what the node refused, and tasks that did not complete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Type

if TYPE_CHECKING:
    from .models import TaskError

__all__ = [
    "BatonError",
    "InvalidRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "PayloadTooLarge",
    "RateLimited",
    "Unavailable",
    "ServerError",
    "ConnectionFailed",
    "WaitTimeout",
    "TaskFailed",
    "TaskCancelled",
    "TaskNotFinished",
    "WorkflowFailed",
]


class BatonError(Exception):
    """Something the node refused or could not do.

    ``code`` is the API's machine-readable error code (``invalid_argument``,
    ``not_found``, ``conflict``...), ``message`` names the problem, ``status`` is the
    HTTP status (``None`` when no answer came), ``details`` any structured detail (e.g.
    every problem of a workflow definition)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "unknown",
        status: Optional[int] = None,
        details: Any = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details
        self.headers: Dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"message={self.message!r})"
        )


class InvalidRequest(BatonError):
    """``400``: a bad body, argument or parameter (``invalid_argument``)."""


class Unauthorized(BatonError):
    """``401``: missing or wrong credentials."""


class Forbidden(BatonError):
    """``403``: the credentials lack a scope, or the request was refused
    (``permission_denied``)."""


class NotFound(BatonError):
    """``404``: no such task, workflow, server... (``not_found``)."""


class Conflict(BatonError):
    """``409``: not possible in the current state, e.g. cancelling a finished task
    (``conflict``)."""


class PayloadTooLarge(BatonError):
    """``413``: the body is over the node's limit (``payload_too_large``)."""


class _RetryAfter(BatonError):
    @property
    def retry_after(self) -> Optional[float]:
        """Seconds to wait before trying again, from the ``Retry-After`` header."""
        value = self.headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            return None


class RateLimited(_RetryAfter):
    """``429``: over a rate or quota (``resource_exhausted``); see ``retry_after``."""


class Unavailable(_RetryAfter):
    """``503``: the node cannot serve now, e.g. draining (``unavailable``); see
    ``retry_after``."""


class ServerError(BatonError):
    """Another ``5xx`` (``internal``)."""


class ConnectionFailed(BatonError):
    """No answer: the node could not be reached, or the connection broke."""


class WaitTimeout(BatonError):
    """The caller's own time limit passed while waiting for a task or workflow."""


class TaskFailed(BatonError):
    """A waited-for task ended ``failed``; ``code`` is the task's error code
    (``tool_error``, ``timeout``...), ``error`` the whole task error."""

    def __init__(self, task_id: str, error: Optional["TaskError"]) -> None:
        message = error.message if error is not None else "the task failed"
        code = error.code if error is not None else "failed"
        details = error.data if error is not None else None
        super().__init__(message, code=code, details=details)
        self.task_id = task_id
        self.error = error
        self.retryable = error.retryable if error is not None else False


class TaskCancelled(BatonError):
    """A waited-for task ended ``cancelled``."""

    def __init__(self, task_id: str, error: Optional["TaskError"] = None) -> None:
        message = error.message if error is not None else "the task was cancelled"
        super().__init__(message, code="cancelled")
        self.task_id = task_id
        self.error = error


class TaskNotFinished(BatonError):
    """The task's result was asked for while it is still going."""

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(f"task {task_id} has not finished (it is {status})", code=status)
        self.task_id = task_id


class WorkflowFailed(BatonError):
    """A waited-for workflow ended ``failed`` or ``cancelled``; ``details`` holds the
    first failed step's error."""

    def __init__(self, workflow_id: str, status: str, error: Any) -> None:
        message = f"workflow {workflow_id} ended {status}"
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message += f": {error['message']}"
        code = error.get("code", status) if isinstance(error, dict) else status
        super().__init__(message, code=str(code), details=error)
        self.workflow_id = workflow_id
        self.workflow_status = status


_BY_STATUS: Dict[int, Type[BatonError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Unavailable,
}

_BY_CODE: Dict[str, Type[BatonError]] = {
    "invalid_argument": InvalidRequest,
    "unauthenticated": Unauthorized,
    "permission_denied": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "resource_exhausted": RateLimited,
    "unavailable": Unavailable,
}


def error_class(status: int, code: str) -> Type[BatonError]:
    """The exception class for an error answer: by HTTP status, else by code."""
    cls = _BY_STATUS.get(status) or _BY_CODE.get(code)
    if cls is not None:
        return cls
    if status >= 500:
        return ServerError
    return BatonError
