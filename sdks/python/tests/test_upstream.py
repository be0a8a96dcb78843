"""A node with a real MCP server behind it (Baton's test server, over stdio): its
servers and tools, and a task that asks its caller for input, answered with
``respond``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest

from baton_client import AsyncBaton, Baton, InvalidRequest

from .conftest import Node, binary

WAIT = 60


@pytest.fixture(scope="module")
def upstream_node(workdir: Path) -> Iterator[Node]:
    testserver = binary("BATON_TESTSERVER_BIN", "baton-testserver")
    config = f'[[servers]]\nname = "ts"\ncommand = {json.dumps(str(testserver))}\n'
    n = Node(workdir / "upstream-node", config=config)
    yield n
    n.stop()


@pytest.fixture
def ubaton(upstream_node: Node) -> Iterator[Baton]:
    with Baton(upstream_node.url) as client:
        deadline = time.monotonic() + WAIT
        while not any(s.name == "ts" and s.state == "healthy" for s in client.servers()):
            assert time.monotonic() < deadline, client.servers()
            time.sleep(0.1)
        yield client


def test_servers_and_their_tools(ubaton: Baton) -> None:
    (server,) = ubaton.servers()
    assert server.name == "ts"
    assert server.transport == "stdio" and server.origin == "config"
    assert server.state == "healthy"
    assert "task_job" in server.tools and server.tool_count == len(server.tools)
    assert server.pid is not None and server.pid > 0
    tools = {t.name: t for t in ubaton.tools()}
    assert tools["ts__task_job"].server == "ts"
    assert "duration_ms" in tools["ts__task_job"].input_schema["properties"]
    assert "baton__echo" in tools
    assert ubaton.servers(tag="no-such-tag") == []


def wait_for_input(baton: Baton, task_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while baton.get(task_id).status != "input_required":
        assert time.monotonic() < deadline, baton.get(task_id)
        time.sleep(0.05)


def test_a_task_asks_for_input_and_respond_answers(ubaton: Baton) -> None:
    sub = ubaton.submit("ts__task_job", {"id": "sdk-ask", "duration_ms": 0, "ask": True})
    wait_for_input(ubaton, sub.task_id)
    task = ubaton.get(sub.task_id)
    assert isinstance(task.input_requests, dict) and len(task.input_requests) == 1
    (key, request), = task.input_requests.items()
    assert request["method"] == "elicitation/create"
    assert "answer" in request["params"]["requestedSchema"]["properties"]

    with pytest.raises(InvalidRequest) as raised:
        ubaton.respond(sub.task_id, {"not-a-request": {"action": "accept"}})
    assert "not-a-request" in raised.value.message

    answered = ubaton.respond(
        sub.task_id, {key: {"action": "accept", "content": {"answer": "forty-two"}}}
    )
    assert answered.task_id == sub.task_id
    result = ubaton.wait_result(sub.task_id, timeout=WAIT)
    assert "job sdk-ask answered: forty-two" in json.dumps(result)
    kinds = [e.kind for e in ubaton.watch(sub.task_id)]
    assert kinds.index("input_required") < kinds.index("input_received") < len(kinds) - 1
    assert kinds[-1] == "completed"


@pytest.mark.anyio
async def test_respond_from_the_async_client(upstream_node: Node, ubaton: Baton) -> None:
    async with AsyncBaton(upstream_node.url) as abaton:
        sub = await abaton.submit(
            "ts__task_job", {"id": "sdk-async-ask", "duration_ms": 0, "ask": True}
        )
        async for event in abaton.watch(sub.task_id):
            if event.kind == "input_required":
                break
        task = await abaton.get(sub.task_id)
        assert task.status == "input_required"
        (key,) = task.input_requests
        await abaton.respond(sub.task_id, {key: {"action": "accept", "content": {"answer": "x"}}})
        result = await abaton.wait_result(sub.task_id, timeout=WAIT)
        assert "answered: x" in json.dumps(result)
