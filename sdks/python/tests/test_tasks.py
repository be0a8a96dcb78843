"""Tasks through the synchronous client, against a real node."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from baton_client import (
    Baton,
    BatonError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    LogLine,
    NotFound,
    PayloadTooLarge,
    TaskCancelled,
    TaskEvent,
    TaskFailed,
    TaskNotFinished,
    Unauthorized,
    WaitTimeout,
)

from .conftest import Node

WAIT = 60


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_submit_and_wait_for_the_result(baton: Baton) -> None:
    args = {"greeting": "hello", "n": 3, "nested": {"ok": True}}
    sub = baton.submit("baton__echo", args, priority="high", metadata={"origin": "sdk"})
    assert sub.created is True
    assert sub.status in ("pending", "running", "completed")
    assert sub.poll_url.endswith(sub.task_id)
    assert isinstance(sub.created_at, datetime) and sub.created_at.tzinfo is not None

    outcome = baton.wait(sub.task_id, timeout=WAIT)
    assert outcome.finished and outcome.status == "completed"
    assert outcome.result["structuredContent"] == args
    assert baton.wait_result(sub.task_id, timeout=WAIT)["structuredContent"] == args

    task = baton.get(sub.task_id)
    assert task.task_id == sub.task_id == task.id
    assert task.tool == "baton__echo"
    assert task.arguments == args
    assert task.status == "completed" and task.is_final
    assert task.priority > 50, "high priority is above normal"
    assert task.metadata == {"origin": "sdk"}
    assert task.result["structuredContent"] == args
    assert task.completed_at is not None and task.completed_at >= task.created_at


def test_submit_a_batch(baton: Baton) -> None:
    queue = unique("batch")
    subs = baton.submit_batch(
        [
            {"tool": "baton__echo", "arguments": {"i": 0}, "queue": queue},
            {"tool": "baton__echo", "arguments": {"i": 1}, "queue": queue, "priority": "low"},
            {"tool": "baton__sleep", "arguments": {"ms": 10}, "queue": queue, "timeout": 30},
        ]
    )
    assert len(subs) == 3 and all(s.created for s in subs)
    assert len({s.task_id for s in subs}) == 3
    assert baton.wait_result(subs[1].task_id, timeout=WAIT)["structuredContent"] == {"i": 1}
    assert baton.get(subs[2].task_id).timeout_ms == 30_000

    other = unique("batch")
    with pytest.raises(InvalidRequest):
        baton.submit_batch(
            [
                {"tool": "baton__echo", "queue": other},
                {"tool": "nosuch__tool", "queue": other},
            ]
        )
    assert baton.list(queue=other).items == [], "all or nothing"


def test_call_submits_and_returns_the_result(baton: Baton) -> None:
    result = baton.call("baton__echo", {"x": 1}, queue=unique("call"), wait_timeout=WAIT)
    assert result["structuredContent"] == {"x": 1}


def test_watch_yields_progress_in_order_and_ends(baton: Baton) -> None:
    sub = baton.submit("baton__sleep", {"ms": 600, "steps": 3})
    events = list(baton.watch(sub.task_id))
    assert all(isinstance(e, TaskEvent) for e in events)
    kinds = [e.kind for e in events]
    assert kinds[0] == "created", kinds
    assert "started" in kinds, kinds
    assert kinds[-1] == "completed", kinds
    assert kinds.count("completed") == 1
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    progress = [e for e in events if e.kind == "progress"]
    # Each step reports; the node writes reports in batches (the newest of a batch
    # wins), so some may be folded into the next one or into the completion.
    assert progress, kinds
    values = [round(e.progress or 0, 3) for e in progress]
    assert values == sorted(set(values)), values
    steps = {0.333: "step 1 of 3", 0.667: "step 2 of 3", 1.0: "step 3 of 3"}
    assert [e.message for e in progress] == [steps[v] for v in values]
    final = events[-1]
    assert final.is_final and final.status == "completed"
    assert final.result["structuredContent"] == {"slept_ms": 600, "steps": 3}

    # Resuming after an event replays only what came after it.
    resumed = list(baton.watch(sub.task_id, last_event_id=progress[0].seq))
    assert [e.seq for e in resumed] == [s for s in seqs if s > progress[0].seq]


def test_watch_with_logs_brings_the_log_lines_before_the_end(baton: Baton) -> None:
    sub = baton.submit("baton__sleep", {"ms": 100, "steps": 1})
    items = list(baton.watch(sub.task_id, logs=True))
    lines = [i for i in items if isinstance(i, LogLine)]
    assert [line.data for line in lines] == ["sleeping 100 ms in 1 steps", "awake"]
    assert all(line.logger == "baton__sleep" and line.level == "info" for line in lines)
    assert isinstance(items[-1], TaskEvent) and items[-1].kind == "completed"

    page = baton.logs(sub.task_id)
    assert [line.data for line in page.logs] == ["sleeping 100 ms in 1 steps", "awake"]
    assert page.finished is True
    after = baton.logs(sub.task_id, after=page.logs[0].seq)
    assert [line.data for line in after.logs] == ["awake"]


def test_cancel_a_running_task(baton: Baton) -> None:
    sub = baton.submit("baton__sleep", {"ms": 60_000, "steps": 600})
    for event in baton.watch(sub.task_id):
        if event.kind == "progress":
            break
    answer = baton.cancel(sub.task_id)
    assert answer.task_id == sub.task_id
    assert answer.cancel_requested or answer.status == "cancelled"

    outcome = baton.wait(sub.task_id, timeout=WAIT)
    assert outcome.status == "cancelled"
    with pytest.raises(TaskCancelled) as raised:
        outcome.unwrap()
    assert raised.value.task_id == sub.task_id
    kinds = [e.kind for e in baton.watch(sub.task_id)]
    assert kinds[-1] == "cancelled", kinds

    with pytest.raises(Conflict) as again:
        baton.cancel(sub.task_id)
    assert again.value.status == 409 and again.value.code == "conflict"


def test_watch_follows_a_retried_task_past_its_old_end(baton: Baton) -> None:
    sub = baton.submit("baton__sleep", {"ms": 60_000, "steps": 600})
    for event in baton.watch(sub.task_id):
        if event.kind == "started":
            break
    baton.cancel(sub.task_id)
    assert baton.wait(sub.task_id, timeout=WAIT).status == "cancelled"
    baton.retry(sub.task_id)

    kinds = []
    for event in baton.watch(sub.task_id):
        kinds.append(event.kind)
        if event.kind == "started" and "retried" in kinds:
            baton.cancel(sub.task_id)
    assert kinds[-1] == "cancelled", kinds
    assert kinds.count("cancelled") == 2, kinds
    assert kinds.index("cancelled") < kinds.index("retried"), kinds


def test_cancel_a_pending_task_and_retry_it(baton: Baton) -> None:
    sub = baton.submit("baton__echo", {"later": True}, delay=3600)
    assert baton.get(sub.task_id).status == "pending"
    answer = baton.cancel(sub.task_id)
    assert answer.status == "cancelled"
    assert baton.get(sub.task_id).status == "cancelled"

    retried = baton.retry(sub.task_id)
    assert retried.task_id == sub.task_id
    assert retried.status == "pending"
    assert baton.wait_result(sub.task_id, timeout=WAIT)["structuredContent"] == {"later": True}


def test_update_changes_a_pending_task(baton: Baton) -> None:
    sub = baton.submit("baton__echo", {}, delay=3600, priority="low")
    before = baton.get(sub.task_id)
    after = baton.update(sub.task_id, priority=77)
    assert after.priority == 77 != before.priority
    baton.cancel(sub.task_id)
    with pytest.raises(Conflict):
        baton.update(sub.task_id, priority=10)


def test_a_failed_task_raises_with_its_code(baton: Baton) -> None:
    sub = baton.submit("baton__fail", {"message": "boom on purpose", "retryable": False})
    outcome = baton.wait(sub.task_id, timeout=WAIT)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.code == "tool_error"

    with pytest.raises(TaskFailed) as raised:
        baton.wait_result(sub.task_id, timeout=WAIT)
    err = raised.value
    assert err.code == "tool_error"
    assert "boom on purpose" in err.message
    assert err.task_id == sub.task_id
    assert err.retryable is False
    assert isinstance(err, BatonError)

    with pytest.raises(TaskFailed, match="again"):
        baton.call("baton__fail", {"message": "again"}, wait_timeout=WAIT)

    first_end = [e for e in baton.watch(sub.task_id)][-1]
    assert first_end.kind == "failed" and first_end.error is not None
    assert first_end.error.code == "tool_error"
    retried = baton.retry(sub.task_id)
    assert retried.status == "pending"
    again = baton.wait(sub.task_id, timeout=WAIT)
    assert again.status == "failed"
    assert again.completed_at and outcome.completed_at
    assert again.completed_at > outcome.completed_at, "it ran again"
    after = [e.kind for e in baton.watch(sub.task_id, last_event_id=first_end.seq)]
    assert after[0] == "retried" and after[-1] == "failed", after


def test_the_result_of_an_unfinished_task(baton: Baton) -> None:
    sub = baton.submit("baton__echo", {}, delay=3600)
    outcome = baton.result(sub.task_id)
    assert outcome.finished is False and outcome.status == "pending"
    with pytest.raises(TaskNotFinished):
        outcome.unwrap()
    with pytest.raises(WaitTimeout):
        baton.wait(sub.task_id, timeout=1)
    baton.cancel(sub.task_id)


def test_an_unknown_tool_is_refused(baton: Baton) -> None:
    with pytest.raises(InvalidRequest) as raised:
        baton.submit("nosuch__tool", {})
    err = raised.value
    assert (err.status, err.code) == (400, "invalid_argument"), repr(err)
    assert "nosuch__tool" in err.message
    assert str(err).startswith("400 invalid_argument: ")


def test_a_body_over_the_limit_is_refused(baton: Baton) -> None:
    with pytest.raises(PayloadTooLarge) as raised:
        baton.submit("baton__echo", {"blob": "x" * (5 * 1024 * 1024)})
    assert raised.value.status == 413 and raised.value.code == "payload_too_large"


def test_bad_arguments_and_ids_are_refused(baton: Baton) -> None:
    with pytest.raises(InvalidRequest) as raised:
        baton.submit("baton__sleep", {"ms": "soon"})
    assert raised.value.status == 400 and raised.value.code == "invalid_argument"
    with pytest.raises(InvalidRequest) as raised:
        baton.submit("baton__echo", {}, priority=101)
    assert "priority" in raised.value.message
    with pytest.raises(NotFound) as missing:
        baton.get(str(uuid.uuid4()))
    assert missing.value.status == 404 and missing.value.code == "not_found"
    with pytest.raises(InvalidRequest):
        baton.get("not-a-task-id")
    with pytest.raises(InvalidRequest) as raised:
        baton.list(limit=100_000)
    assert "limit" in raised.value.message
    with pytest.raises(InvalidRequest) as raised:
        baton.list(status="bogus")
    assert "bogus" in raised.value.message


def test_the_idempotency_key_names_one_task(baton: Baton) -> None:
    key = unique("idem")
    first = baton.submit("baton__echo", {"n": 1}, idempotency_key=key)
    second = baton.submit("baton__echo", {"n": 1}, idempotency_key=key)
    assert first.created is True
    assert second.created is False
    assert second.task_id == first.task_id
    assert baton.get(first.task_id).idempotency_key == key


def test_list_pages_through_the_tasks(baton: Baton) -> None:
    queue = unique("page")
    ids = [baton.submit("baton__echo", {"i": i}, queue=queue).task_id for i in range(5)]

    page = baton.list(queue=queue, limit=2)
    assert len(page) == 2 and page.next_cursor
    second = baton.list(queue=queue, limit=2, cursor=page.next_cursor)
    assert len(second) == 2
    assert not {t.task_id for t in page} & {t.task_id for t in second}

    seen = [t.task_id for t in baton.iter_tasks(queue=queue, page_size=2)]
    assert sorted(seen) == sorted(ids)
    assert all(t.queue == queue for t in baton.iter_tasks(queue=queue))
    created = [t.created_at for t in baton.iter_tasks(queue=queue, page_size=2)]
    assert created == sorted(created, reverse=True), "newest first"

    for task_id in ids:
        baton.wait(task_id, timeout=WAIT)
    done = list(baton.iter_tasks(queue=queue, status="completed", tool="baton__echo"))
    assert len(done) == 5
    assert baton.list(queue=queue, status="failed").items == []


def test_tools(baton: Baton) -> None:
    tools = {t.name: t for t in baton.tools()}
    for name in ("baton__echo", "baton__sleep", "baton__fail"):
        assert name in tools
        assert tools[name].server == "baton"
        assert tools[name].description
    assert tools["baton__sleep"].input_schema["required"] == ["ms"]
    assert baton.servers() == [], "the built-in tools belong to no MCP server"


def test_a_node_that_cannot_be_reached(node: Node) -> None:
    with Baton("http://127.0.0.1:9", timeout=5) as unreachable:
        with pytest.raises(ConnectionFailed) as raised:
            unreachable.get("x")
    assert raised.value.status is None


def test_configuration_from_the_environment(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_URL", node.url)
    monkeypatch.delenv("BATON_API_KEY", raising=False)
    monkeypatch.delenv("BATON_TOKEN", raising=False)
    with Baton() as client:
        assert client.base_url == node.url.rstrip("/")
        assert client.call("baton__echo", {"env": True}, wait_timeout=WAIT)[
            "structuredContent"
        ] == {"env": True}

    # A key the node does not know is refused, even on loopback: so it was sent.
    monkeypatch.setenv("BATON_API_KEY", "bk_0000000000000000_not-a-real-key")
    with Baton() as client:
        with pytest.raises(Unauthorized) as raised:
            client.get(str(uuid.uuid4()))
    assert raised.value.status == 401 and raised.value.code == "unauthenticated"
