"""The asynchronous client (asyncio or trio, through httpx)."""

from __future__ import annotations

import anyio
from datetime import datetime
from types import TracebackType
from typing import (
    Any,
    Dict,
    AsyncIterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
    overload,
)

import httpx

from . import _api
from ._api import DEFAULT_TIMEOUT, Call, Deadline, Duration
from .errors import ConnectionFailed, WaitTimeout, WorkflowFailed
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
)

T = TypeVar("T")

#: Reconnections of an event stream in a row that bring nothing new before giving up.
STREAM_RETRIES = 5
#: The node sends a keep-alive comment every 15 s: silence past this is a dead stream.
STREAM_READ_TIMEOUT = 45.0


class AsyncBaton:
    """An asynchronous client of a Baton node's REST API (the same methods as
    :class:`Baton`, awaited).

    ``base_url`` defaults to ``BATON_URL``, else ``http://127.0.0.1:7420``; ``api_key``
    to ``BATON_API_KEY``, else ``BATON_TOKEN`` (sent as
    ``Authorization: Bearer``). ``timeout`` is the HTTP
    timeout in seconds (``None``: none); long-polls add the time they wait.

    Use it as an async context manager (``async with``), or await :meth:`aclose`."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self.base_url, default_headers = _api.resolve_config(base_url, api_key, headers)
        self.timeout = timeout
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self._http.base_url = httpx.URL(self.base_url)
        self._http.headers.update(default_headers)

    async def aclose(self) -> None:
        """Closes the connections (not a client passed as ``http_client``)."""
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncBaton":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncBaton({self.base_url!r})"

    async def _do(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, timeout=call.timeout(self.timeout), **call.request_kwargs()
            )
        except httpx.TransportError as e:
            raise ConnectionFailed(
                f"{call.method} {self.base_url}{call.path}: {e}", code="connection_failed"
            ) from e
        _api.raise_for_error(response)
        return call.parse(response)

    # ---- tasks ---------------------------------------------------------------------

    async def submit(
        self,
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
    ) -> Submission:
        """Submits a tool call as a task; answers once the node has stored it.

        Durations (``delay``, ``timeout`` per attempt, ``ttl``) are seconds or a
        ``timedelta``. The same ``idempotency_key`` returns the same task
        (``created`` is then ``False``)."""
        body = _api.submit_body(
            tool,
            arguments,
            priority=priority,
            queue=queue,
            idempotency_key=idempotency_key,
            delay=delay,
            run_at=run_at,
            timeout=timeout,
            max_attempts=max_attempts,
            ttl=ttl,
            group_key=group_key,
            cache=cache,
            metadata=metadata,
            callback_url=callback_url,
        )
        return await self._do(_api.submit(body))

    async def submit_batch(self, tasks: Sequence[Mapping[str, Any]]) -> List[Submission]:
        """Submits several tasks at once, all or nothing (one transaction). Each item
        holds :meth:`submit`'s arguments by name: ``{"tool": ..., "arguments": ...,
        "priority": ...}``."""
        bodies = [_api.submit_body(**dict(t)) for t in tasks]
        return await self._do(_api.submit_batch(bodies))

    async def call(
        self,
        tool: str,
        arguments: Optional[Mapping[str, Any]] = None,
        *,
        wait_timeout: Optional[Duration] = None,
        **options: Any,
    ) -> Any:
        """Submits a task, waits for it and returns the tool's result. Raises
        :class:`TaskFailed` (with the task's error code) or :class:`TaskCancelled` when
        it did not complete, :class:`WaitTimeout` after ``wait_timeout`` seconds.
        ``options`` are :meth:`submit`'s."""
        submission = await self.submit(tool, arguments, **options)
        return await self.wait_result(submission.task_id, timeout=wait_timeout)

    async def get(self, task_id: str) -> Task:
        """The task, with its result once completed."""
        return await self._do(_api.get_task(task_id))

    async def list(
        self,
        *,
        status: Union[str, Sequence[str], None] = None,
        tool: Optional[str] = None,
        queue: Optional[str] = None,
        workflow_id: Optional[str] = None,
        parent_id: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Page[Task]:
        """One page of the caller's tasks, newest first."""
        return await self._do(
            _api.list_tasks(
                status=status,
                tool=tool,
                queue=queue,
                workflow_id=workflow_id,
                parent_id=parent_id,
                limit=limit,
                cursor=cursor,
            )
        )

    async def iter_tasks(
        self,
        *,
        status: Union[str, Sequence[str], None] = None,
        tool: Optional[str] = None,
        queue: Optional[str] = None,
        workflow_id: Optional[str] = None,
        parent_id: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[Task]:
        """Every matching task, newest first, fetching pages as it goes."""
        cursor: Optional[str] = None
        while True:
            page = await self.list(
                status=status,
                tool=tool,
                queue=queue,
                workflow_id=workflow_id,
                parent_id=parent_id,
                limit=page_size,
                cursor=cursor,
            )
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def cancel(self, task_id: str) -> CancelResult:
        """Cancels a task (and its children): a pending one at once, a running one
        through its tool. :class:`Conflict` if it already finished."""
        return await self._do(_api.cancel(task_id))

    async def retry(self, task_id: str) -> Task:
        """Runs a failed or cancelled task again."""
        return await self._do(_api.retry(task_id))

    async def update(
        self,
        task_id: str,
        *,
        priority: Optional[Priority] = None,
        delay: Optional[Duration] = None,
        run_at: Union[datetime, str, None] = None,
    ) -> Task:
        """Changes a pending task's priority and/or when it is due."""
        return await self._do(
            _api.update(task_id, _api.update_body(priority=priority, delay=delay, run_at=run_at))
        )

    async def result(self, task_id: str, *, wait: Optional[float] = None) -> TaskResult:
        """The task's outcome now, or within ``wait`` seconds (one long-poll, at most
        300 s); ``finished`` says whether it has one."""
        return await self._do(_api.result(task_id, wait))

    async def wait(self, task_id: str, *, timeout: Optional[Duration] = None) -> TaskResult:
        """Waits until the task finishes (long-polls, for as long as needed) and returns
        its outcome, whatever it is. :class:`WaitTimeout` after ``timeout`` seconds."""
        deadline = Deadline(timeout)
        while True:
            outcome = await self.result(task_id, wait=deadline.next_wait())
            if outcome.finished:
                return outcome
            if deadline.passed():
                raise WaitTimeout(
                    f"task {task_id} is still {outcome.status} after {deadline.timeout} s",
                    code="wait_timeout",
                )

    async def wait_result(self, task_id: str, *, timeout: Optional[Duration] = None) -> Any:
        """Waits for the task and returns the tool's result; raises
        :class:`TaskFailed` or :class:`TaskCancelled` when it did not complete."""
        return (await self.wait(task_id, timeout=timeout)).unwrap()

    @overload
    def watch(
        self,
        task_id: str,
        *,
        logs: Literal[False] = ...,
        last_event_id: Optional[int] = ...,
    ) -> AsyncIterator[TaskEvent]: ...

    @overload
    def watch(
        self,
        task_id: str,
        *,
        logs: Literal[True],
        last_event_id: Optional[int] = ...,
    ) -> AsyncIterator[Union[TaskEvent, LogLine]]: ...

    async def watch(
        self,
        task_id: str,
        *,
        logs: bool = False,
        last_event_id: Optional[int] = None,
    ) -> AsyncIterator[Union[TaskEvent, LogLine]]:
        """The task's events as they happen (from the start, or after
        ``last_event_id``), ending with the event of its final state, which carries
        its result or error (a task retried since then goes on to its next end). With
        ``logs=True``, its log lines come too, as
        :class:`LogLine`. A broken stream is resumed where it stopped.
        Iterate it with ``async for``."""
        last = last_event_id
        logs_after: Optional[int] = None
        quiet = 0
        while True:
            path, params, headers = _api.events_request(
                task_id, last_event_id=last, logs=logs, logs_after=logs_after
            )
            progressed = False
            try:
                async with self._http.stream(
                    "GET",
                    path,
                    params=params,
                    headers=headers,
                    timeout=_stream_timeout(self.timeout),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _api.raise_for_error(response)
                    decoder = _api.SSEDecoder()
                    async for line in response.aiter_lines():
                        message = decoder.feed(line)
                        if message is None:
                            continue
                        item = _api.decode_event(message)
                        if item is None:
                            continue
                        progressed = True
                        if isinstance(item, LogLine):
                            logs_after = item.seq
                            yield item
                            continue
                        last = item.seq
                        yield item
                        if item.is_final:
                            # A final event replayed from before a retry is not the
                            # end: the task runs again, and its stream goes on.
                            if (await self.get(task_id)).is_final:
                                return
                            break
            except httpx.TransportError as e:
                if quiet >= STREAM_RETRIES:
                    raise ConnectionFailed(
                        f"the event stream of task {task_id} broke: {e}",
                        code="connection_failed",
                    ) from e
            quiet = 0 if progressed else quiet + 1
            if quiet > STREAM_RETRIES:
                raise ConnectionFailed(
                    f"the event stream of task {task_id} ended before the task did",
                    code="connection_failed",
                )
            if not progressed:
                await anyio.sleep(min(2.0, 0.2 * quiet))

    async def respond(self, task_id: str, responses: Mapping[str, Any]) -> Task:
        """Answers an ``input_required`` task: ``responses`` keyed like its
        ``input_requests``."""
        return await self._do(_api.respond(task_id, responses))

    async def logs(
        self,
        task_id: str,
        *,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        wait: Optional[float] = None,
    ) -> LogPage:
        """A page of what the task's tool logged, oldest first; pass the page's
        ``next_after`` as ``after`` to read on. With ``wait``, waits for a line while
        the task runs."""
        return await self._do(_api.logs(task_id, after=after, limit=limit, wait=wait))

    # ---- workflows -----------------------------------------------------------------

    async def submit_workflow(self, definition: Union[Mapping[str, Any], str, bytes]) -> Workflow:
        """Submits a workflow: a definition as a dict, or as YAML or JSON text.
        :class:`InvalidRequest` names every problem (``details``) and nothing is
        stored."""
        return await self._do(_api.submit_workflow(definition))

    async def get_workflow(self, workflow_id: str) -> Workflow:
        """The workflow, with each step's state."""
        return await self._do(_api.get_workflow(workflow_id))

    async def workflow_result(
        self, workflow_id: str, *, wait: Optional[float] = None
    ) -> WorkflowResult:
        """The workflow's outcome now, or within ``wait`` seconds (one long-poll)."""
        return await self._do(_api.workflow_result(workflow_id, wait))

    async def wait_workflow(
        self,
        workflow_id: str,
        *,
        timeout: Optional[Duration] = None,
        raise_on_failure: bool = False,
    ) -> WorkflowResult:
        """Waits until the workflow is over and returns its outcome (the results of
        its final steps). With ``raise_on_failure``, a workflow that ended ``failed``
        or ``cancelled`` raises :class:`WorkflowFailed`."""
        deadline = Deadline(timeout)
        while True:
            outcome = await self.workflow_result(workflow_id, wait=deadline.next_wait())
            if outcome.status != "running":
                if raise_on_failure and outcome.status != "completed":
                    raise WorkflowFailed(workflow_id, outcome.status, outcome.error)
                return outcome
            if deadline.passed():
                raise WaitTimeout(
                    f"workflow {workflow_id} is still running after {deadline.timeout} s",
                    code="wait_timeout",
                )

    async def cancel_workflow(self, workflow_id: str) -> Workflow:
        """Cancels the workflow: running steps are cancelled, nothing more starts."""
        return await self._do(_api.cancel_workflow(workflow_id))

    async def retry_workflow(self, workflow_id: str) -> Workflow:
        """Runs a failed or cancelled workflow again from where it stopped."""
        return await self._do(_api.retry_workflow(workflow_id))

    async def list_workflows(
        self,
        *,
        status: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Page[Workflow]:
        """One page of the caller's workflows, newest first (without their steps)."""
        return await self._do(_api.list_workflows(status=status, limit=limit, cursor=cursor))

    async def iter_workflows(
        self, *, status: Optional[str] = None, page_size: Optional[int] = None
    ) -> AsyncIterator[Workflow]:
        """Every matching workflow, newest first, fetching pages as it goes."""
        cursor: Optional[str] = None
        while True:
            page = await self.list_workflows(status=status, limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def workflow_timeline(self, workflow_id: str) -> List[WorkflowEvent]:
        """Every step's task events, in order."""
        return await self._do(_api.workflow_timeline(workflow_id))

    @overload
    async def workflow_dag(
        self, workflow_id: str, format: Literal["json"] = ...
    ) -> Dict[str, Any]: ...

    @overload
    async def workflow_dag(self, workflow_id: str, format: Literal["dot", "mermaid"]) -> str: ...

    async def workflow_dag(self, workflow_id: str, format: str = "json") -> Any:
        """The workflow's graph with each step's state and the critical path: a dict
        (``json``), or Graphviz ``dot`` or ``mermaid`` text."""
        return await self._do(_api.workflow_dag(workflow_id, format))

    # ---- servers and tools ---------------------------------------------------------

    async def servers(self, *, tag: Optional[str] = None) -> List[Server]:
        """The MCP servers, with their health (only those with ``tag`` if given)."""
        return await self._do(_api.servers(tag))

    async def tools(self) -> List[Tool]:
        """The tool catalog, with input schemas."""
        return await self._do(_api.tools())


def _stream_timeout(base: Optional[float]) -> httpx.Timeout:
    if base is None:
        return httpx.Timeout(None)
    return httpx.Timeout(base, read=max(base, STREAM_READ_TIMEOUT))
