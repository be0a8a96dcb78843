"""The main paths through the asynchronous client, against a real node."""

from __future__ import annotations

import uuid
from typing import AsyncIterator, List

import anyio
import pytest

from baton_client import (
    AsyncBaton,
    Conflict,
    InvalidRequest,
    LogLine,
    NotFound,
    TaskCancelled,
    TaskEvent,
    TaskFailed,
    WaitTimeout,
)

from .conftest import Node
from .test_workflows import diamond

pytestmark = pytest.mark.anyio

WAIT = 60


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def abaton(node: Node) -> AsyncIterator[AsyncBaton]:
    async with AsyncBaton(node.url) as client:
        yield client


async def test_submit_and_wait(abaton: AsyncBaton) -> None:
    sub = await abaton.submit("baton__echo", {"async": True}, priority=80)
    assert sub.created
    outcome = await abaton.wait(sub.task_id, timeout=WAIT)
    assert outcome.status == "completed"
    assert outcome.result["structuredContent"] == {"async": True}
    task = await abaton.get(sub.task_id)
    assert task.priority == 80 and task.status == "completed"
    assert await abaton.call("baton__echo", {"y": 2}, wait_timeout=WAIT) == {
        **task.result,
        "structuredContent": {"y": 2},
        "content": [{"type": "text", "text": '{"y":2}'}],
    }


async def test_many_tasks_at_once(abaton: AsyncBaton) -> None:
    results: List[object] = [None] * 8

    async def one(i: int) -> None:
        results[i] = (await abaton.call("baton__echo", {"i": i}, wait_timeout=WAIT))[
            "structuredContent"
        ]

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(one, i)
    assert results == [{"i": i} for i in range(8)]


async def test_watch_yields_progress_in_order_and_ends(abaton: AsyncBaton) -> None:
    sub = await abaton.submit("baton__sleep", {"ms": 400, "steps": 4})
    events = [e async for e in abaton.watch(sub.task_id)]
    assert all(isinstance(e, TaskEvent) for e in events)
    assert events[0].kind == "created" and events[-1].kind == "completed"
    progress = [e.progress or 0.0 for e in events if e.kind == "progress"]
    assert progress and progress == sorted(progress), progress
    assert set(progress) <= {0.25, 0.5, 0.75, 1.0}, progress
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))

    items = [i async for i in abaton.watch(sub.task_id, logs=True)]
    assert [i.data for i in items if isinstance(i, LogLine)] == [
        "sleeping 400 ms in 4 steps",
        "awake",
    ]
    page = await abaton.logs(sub.task_id)
    assert page.finished and len(page.logs) == 2


async def test_cancel(abaton: AsyncBaton) -> None:
    sub = await abaton.submit("baton__sleep", {"ms": 60_000, "steps": 600})
    async for event in abaton.watch(sub.task_id):
        if event.kind == "started":
            break
    await abaton.cancel(sub.task_id)
    with pytest.raises(TaskCancelled):
        await abaton.wait_result(sub.task_id, timeout=WAIT)
    with pytest.raises(Conflict):
        await abaton.cancel(sub.task_id)
    retried = await abaton.retry(sub.task_id)
    assert retried.status == "pending"
    await abaton.cancel(sub.task_id)


async def test_a_failed_task_raises_with_its_code(abaton: AsyncBaton) -> None:
    with pytest.raises(TaskFailed) as raised:
        await abaton.call("baton__fail", {"message": "async boom"}, wait_timeout=WAIT)
    assert raised.value.code == "tool_error"
    assert "async boom" in raised.value.message


async def test_errors(abaton: AsyncBaton) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await abaton.submit("baton__sleep", {"ms": -1})
    assert raised.value.status == 400 and raised.value.code == "invalid_argument"
    with pytest.raises(NotFound):
        await abaton.get(str(uuid.uuid4()))
    sub = await abaton.submit("baton__echo", {}, delay=3600)
    with pytest.raises(WaitTimeout):
        await abaton.wait(sub.task_id, timeout=1)
    await abaton.cancel(sub.task_id)


async def test_idempotency_and_paging(abaton: AsyncBaton) -> None:
    queue = unique("apage")
    key = unique("akey")
    first = await abaton.submit("baton__echo", {}, queue=queue, idempotency_key=key)
    again = await abaton.submit("baton__echo", {}, queue=queue, idempotency_key=key)
    assert again.task_id == first.task_id and not again.created
    ids = {first.task_id}
    for i in range(4):
        ids.add((await abaton.submit("baton__echo", {"i": i}, queue=queue)).task_id)
    page = await abaton.list(queue=queue, limit=3)
    assert len(page) == 3 and page.next_cursor
    seen = [t.task_id async for t in abaton.iter_tasks(queue=queue, page_size=2)]
    assert sorted(seen) == sorted(ids)


async def test_a_workflow(abaton: AsyncBaton) -> None:
    wf = await abaton.submit_workflow(diamond(unique("adiamond")))
    outcome = await abaton.wait_workflow(wf.workflow_id, timeout=WAIT)
    assert outcome.status == "completed"
    assert outcome.outputs["d"]["structuredContent"]["from_b"] == 21
    full = await abaton.get_workflow(wf.workflow_id)
    assert [s.state for s in full.steps] == ["completed"] * 4
    dag = await abaton.workflow_dag(wf.workflow_id)
    assert isinstance(dag, dict)
    listed = [w.workflow_id async for w in abaton.iter_workflows(page_size=5)]
    assert wf.workflow_id in listed
    tools = await abaton.tools()
    assert "baton__echo" in {t.name for t in tools}
    assert isinstance(await abaton.servers(), list)
