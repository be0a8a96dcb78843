"""Workflows through the synchronous client, against a real node."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Dict

import pytest

from baton_client import Baton, Conflict, InvalidRequest, NotFound, WorkflowFailed

WAIT = 60


def diamond(name: str) -> Dict[str, Any]:
    """a -> (b, c) -> d, with arguments taken from earlier results."""
    return {
        "name": name,
        "steps": [
            {"id": "a", "tool": "baton__echo", "arguments": {"x": 21, "word": "diamond"}},
            {
                "id": "b",
                "tool": "baton__echo",
                "depends_on": ["a"],
                "arguments": {"x": "${steps.a.result.structuredContent.x}"},
            },
            {
                "id": "c",
                "tool": "baton__echo",
                "depends_on": ["a"],
                "arguments": {"label": "the ${steps.a.result.structuredContent.word} shape"},
            },
            {
                "id": "d",
                "tool": "baton__echo",
                "depends_on": ["b", "c"],
                "arguments": {
                    "from_b": "${steps.b.result.structuredContent.x}",
                    "from_c": "${steps.c.result.structuredContent.label}",
                },
            },
        ],
    }


DIAMOND_YAML = """
name: {name}
steps:
  - id: a
    tool: baton__echo
    arguments: {{x: 21, word: diamond}}
  - id: b
    tool: baton__echo
    depends_on: [a]
    arguments: {{x: "${{steps.a.result.structuredContent.x}}"}}
  - id: c
    tool: baton__echo
    depends_on: [a]
    arguments: {{label: "the ${{steps.a.result.structuredContent.word}} shape"}}
  - id: d
    tool: baton__echo
    depends_on: [b, c]
    arguments:
      from_b: "${{steps.b.result.structuredContent.x}}"
      from_c: "${{steps.c.result.structuredContent.label}}"
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def check_diamond(baton: Baton, workflow_id: str) -> None:
    outcome = baton.wait_workflow(workflow_id, timeout=WAIT, raise_on_failure=True)
    assert outcome.status == "completed"
    assert list(outcome.outputs) == ["d"]
    assert outcome.outputs["d"]["structuredContent"] == {
        "from_b": 21,
        "from_c": "the diamond shape",
    }
    assert outcome.progress.steps_total == 4 and outcome.progress.steps_completed == 4

    wf = baton.get_workflow(workflow_id)
    assert wf.status == "completed" and wf.is_final
    assert {s.step_id: s.state for s in wf.steps} == dict.fromkeys("abcd", "completed")
    assert sorted(wf.step("d").depends_on) == ["b", "c"]
    step_b = wf.step("b")
    assert step_b.task_id is not None
    task = baton.get(step_b.task_id)
    assert task.workflow_id == workflow_id and task.step_id == "b"
    assert task.arguments == {"x": 21}, "a whole-string reference keeps the value's type"

    timeline = baton.workflow_timeline(workflow_id)
    assert {e.step_id for e in timeline} == set("abcd")
    order = [(e.at, e.seq) for e in timeline]
    assert order == sorted(order), "in time order"
    done = [e.step_id for e in timeline if e.kind == "completed"]
    assert sorted(done) == list("abcd") and done[0] == "a" and done[-1] == "d"

    dag = baton.workflow_dag(workflow_id)
    assert dag["workflow_id"] == workflow_id and dag["status"] == "completed"
    assert sorted(n["id"] for n in dag["nodes"]) == list("abcd")
    assert all(n["status"] == "completed" for n in dag["nodes"])
    assert len(dag["edges"]) == 4
    assert dag["critical_path"][0] == "a" and dag["critical_path"][-1] == "d"
    mermaid = baton.workflow_dag(workflow_id, format="mermaid")
    assert mermaid.startswith("flowchart") and "-->" in mermaid
    dot = baton.workflow_dag(workflow_id, format="dot")
    assert dot.lstrip().startswith("digraph")


def test_a_diamond_workflow_as_a_dict(baton: Baton) -> None:
    wf = baton.submit_workflow(diamond(unique("diamond")))
    assert wf.status == "running"
    assert wf.on_failure == "fail_fast"
    assert {s.step_id for s in wf.steps} == set("abcd")
    check_diamond(baton, wf.workflow_id)


def test_a_diamond_workflow_as_yaml_and_as_json_text(baton: Baton) -> None:
    from_yaml = baton.submit_workflow(DIAMOND_YAML.format(name=unique("yaml")))
    check_diamond(baton, from_yaml.workflow_id)
    from_json = baton.submit_workflow(json.dumps(diamond(unique("json"))))
    check_diamond(baton, from_json.workflow_id)


def test_an_invalid_definition_names_every_problem(baton: Baton) -> None:
    definition = {
        "name": unique("bad"),
        "steps": [
            {"id": "a", "tool": "nosuch__tool"},
            {"id": "b", "tool": "baton__echo", "depends_on": ["ghost"]},
        ],
    }
    with pytest.raises(InvalidRequest) as raised:
        baton.submit_workflow(definition)
    err = raised.value
    assert err.status == 400 and err.code == "invalid_argument"
    assert isinstance(err.details, list) and len(err.details) >= 2, err.details
    assert {d["step"] for d in err.details} >= {"a", "b"}
    assert all(w.name != definition["name"] for w in baton.iter_workflows()), "none stored"


def test_a_malformed_definition_is_refused(baton: Baton) -> None:
    with pytest.raises(InvalidRequest) as raised:
        baton.submit_workflow("name: [unclosed")
    assert "YAML" in raised.value.message
    with pytest.raises(InvalidRequest) as raised:
        baton.submit_workflow(
            {"name": unique("extra"), "steps": [{"id": "a", "tool": "baton__echo"}], "bogus": 1}
        )
    assert "bogus" in raised.value.message


def test_a_failed_step_fails_the_workflow(baton: Baton) -> None:
    wf = baton.submit_workflow(
        {
            "name": unique("fails"),
            "steps": [
                {"id": "ok", "tool": "baton__echo", "arguments": {}},
                {
                    "id": "bad",
                    "tool": "baton__fail",
                    "depends_on": ["ok"],
                    "arguments": {"message": "step broke"},
                },
                {"id": "after", "tool": "baton__echo", "depends_on": ["bad"]},
            ],
        }
    )
    outcome = baton.wait_workflow(wf.workflow_id, timeout=WAIT)
    assert outcome.status == "failed"
    with pytest.raises(WorkflowFailed) as raised:
        baton.wait_workflow(wf.workflow_id, timeout=WAIT, raise_on_failure=True)
    assert "step broke" in raised.value.message
    states = {s.step_id: s.state for s in baton.get_workflow(wf.workflow_id).steps}
    assert states == {"ok": "completed", "bad": "failed", "after": "skipped"}


def test_cancel_and_retry_a_workflow(baton: Baton) -> None:
    wf = baton.submit_workflow(
        {
            "name": unique("cancel"),
            "steps": [
                {"id": "first", "tool": "baton__echo", "arguments": {"n": 1}},
                {
                    "id": "slow",
                    "tool": "baton__sleep",
                    "depends_on": ["first"],
                    "arguments": {"ms": 60000, "steps": 600},
                },
            ],
        }
    )
    deadline = time.monotonic() + WAIT
    while baton.get_workflow(wf.workflow_id).step("slow").state != "running":
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.05)
    cancelled = baton.cancel_workflow(wf.workflow_id)
    assert cancelled.workflow_id == wf.workflow_id
    assert baton.wait_workflow(wf.workflow_id, timeout=WAIT).status == "cancelled"
    with pytest.raises(Conflict):
        baton.cancel_workflow(wf.workflow_id)

    again = baton.retry_workflow(wf.workflow_id)
    assert again.status == "running"
    first = baton.get_workflow(wf.workflow_id).step("first")
    assert first.state == "completed", "completed steps keep their results"
    baton.cancel_workflow(wf.workflow_id)
    assert baton.wait_workflow(wf.workflow_id, timeout=WAIT).status == "cancelled"


def test_list_workflows_pages(baton: Baton) -> None:
    ids = {
        baton.submit_workflow(
            {"name": unique("listed"), "steps": [{"id": "s", "tool": "baton__echo"}]}
        ).workflow_id
        for _ in range(3)
    }
    page = baton.list_workflows(limit=2)
    assert len(page) == 2 and page.next_cursor
    seen = {w.workflow_id for w in baton.iter_workflows(page_size=2)}
    assert ids <= seen
    for workflow_id in ids:
        baton.wait_workflow(workflow_id, timeout=WAIT)
    done = {w.workflow_id for w in baton.iter_workflows(status="completed")}
    assert ids <= done


def test_an_unknown_workflow(baton: Baton) -> None:
    with pytest.raises(NotFound) as raised:
        baton.get_workflow(str(uuid.uuid4()))
    assert raised.value.status == 404
