"""The SDK's models against the node's own OpenAPI document: every field a model
declares is a property of the schema it mirrors, with a type that accepts everything the
schema allows; every required property is in the model; optional properties have
defaults; enumerations list the same values. The request bodies the SDK builds use only
properties the request schemas define. When the API changes, this fails."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Dict, List, Literal, Set, Tuple, Union, get_args, get_origin

import httpx
import pytest

from baton_client import _api, models
from baton_client.models import Model

from .conftest import Node

Schema = Dict[str, Any]
ALL_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})

MODELS: List[type] = [
    models.TaskError,
    models.Lease,
    models.Task,
    models.Submission,
    models.TaskResult,
    models.CancelResult,
    models.TaskEvent,
    models.WorkflowEvent,
    models.LogLine,
    models.LogPage,
    models.WorkflowProgress,
    models.WorkflowStep,
    models.Workflow,
    models.WorkflowResult,
    models.Server,
    models.Tool,
]

# The aliases that mirror a schema's enumeration.
ENUMS: List[Tuple[Any, str]] = [
    (models.TaskStatus, "TaskStatus"),
    (models.EventKind, "EventKind"),
    (models.WorkflowStatus, "WorkflowStatus"),
    (models.StepState, "StepState"),
    (models.OnFailure, "OnFailure"),
    (models.CacheMode, "CacheMode"),
]

# Lists: the page's item field in the schema, and the item's model.
PAGES: List[Tuple[str, str, type]] = [
    ("TaskList", "tasks", models.Task),
    ("WorkflowList", "workflows", models.Workflow),
    ("ToolList", "tools", models.Tool),
    ("ServerList", "servers", models.Server),
    ("BatchAccepted", "tasks", models.Submission),
    ("Timeline", "events", models.WorkflowEvent),
]

# Task events mirror TimelineEntry, which adds the step a workflow's event belongs to.
NOT_IN_MODEL: Dict[str, Set[str]] = {"TimelineEntry": {"step_id"}}


@pytest.fixture(scope="module")
def document(node: Node) -> Schema:
    response = httpx.get(f"{node.url}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    doc: Schema = response.json()
    assert doc["openapi"].startswith("3."), doc["openapi"]
    return doc


@pytest.fixture(scope="module")
def schemas(document: Schema) -> Dict[str, Schema]:
    found: Dict[str, Schema] = document["components"]["schemas"]
    return found


def ref_name(schema: Schema) -> str | None:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return ref.rsplit("/", 1)[1]
    return None


def resolve(schema: Schema, schemas: Dict[str, Schema]) -> Schema:
    while (name := ref_name(schema)) is not None:
        schema = schemas[name]
    return schema


def json_types(schema: Schema, schemas: Dict[str, Schema]) -> Set[str]:
    """The JSON types a schema allows (every type when it says nothing)."""
    schema = resolve(schema, schemas)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            out: Set[str] = set()
            for part in schema[key]:
                out |= json_types(part, schemas)
            return out
    if "const" in schema or "enum" in schema:
        values = schema.get("enum", [schema.get("const")])
        return {"null" if v is None else _json_type(v) for v in values}
    t = schema.get("type")
    if t is None:
        return set(ALL_TYPES)
    return {t} if isinstance(t, str) else set(t)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def enum_values(schema: Schema, schemas: Dict[str, Schema]) -> Set[Any] | None:
    """The values of an enumeration (``enum``, ``const``, or unions of them)."""
    schema = resolve(schema, schemas)
    if "enum" in schema:
        return set(schema["enum"])
    if "const" in schema:
        return {schema["const"]}
    for key in ("anyOf", "oneOf"):
        if key in schema:
            out: Set[Any] = set()
            for part in schema[key]:
                values = enum_values(part, schemas)
                if values is None:
                    return None
                out |= values
            return out
    return None


def non_null(schema: Schema, schemas: Dict[str, Schema]) -> Schema:
    """The schema without its ``null`` alternative (a ``$ref`` is kept as it is)."""
    if ref_name(schema) is not None:
        return schema
    for key in ("anyOf", "oneOf"):
        parts = [p for p in schema.get(key, []) if resolve(p, schemas).get("type") != "null"]
        if key in schema and len(parts) == 1:
            return non_null(parts[0], schemas)
    return schema


def item_schema(schema: Schema, schemas: Dict[str, Schema]) -> Schema:
    """The ``items`` schema of an array (nullable or not)."""
    found = resolve(schema, schemas)
    if "items" in found:
        items: Schema = found["items"]
        return items
    for key in ("anyOf", "oneOf"):
        for part in found.get(key, []):
            part = resolve(part, schemas)
            if "items" in part:
                items = part["items"]
                return items
    return {}


def accepted(tp: Any) -> Set[str]:
    """The JSON types a model field's annotation takes."""
    if tp is Any:
        return set(ALL_TYPES)
    origin = get_origin(tp)
    if origin is Union:
        out: Set[str] = set()
        for arg in get_args(tp):
            out |= {"null"} if arg is type(None) else accepted(arg)
        return out
    if origin is Literal:
        return {_json_type(v) for v in get_args(tp)}
    if origin in (list, List):
        return {"array"}
    if origin in (dict, Dict):
        return {"object"}
    if tp is datetime or tp is str:
        return {"string"}
    if tp is bool:
        return {"boolean"}
    if tp is int:
        return {"integer"}
    if tp is float:
        return {"number", "integer"}
    if isinstance(tp, type) and issubclass(tp, Model):
        return {"object"}
    raise AssertionError(f"no JSON mapping for {tp!r}")


def check_field(
    where: str, tp: Any, prop: Schema, schemas: Dict[str, Schema], problems: List[str]
) -> None:
    """Collects what makes ``tp`` unfit for values of ``prop``."""
    allowed = json_types(prop, schemas)
    missing = allowed - accepted(tp)
    if missing:
        problems.append(f"{where}: the schema allows {sorted(missing)}, the model takes {tp!r}")
    inner = tp
    if get_origin(tp) is Union:
        rest = [a for a in get_args(tp) if a is not type(None)]
        inner = rest[0] if len(rest) == 1 else tp
    target = non_null(prop, schemas)
    if inner is datetime:
        fmt = resolve(target, schemas).get("format")
        if fmt != "date-time":
            problems.append(f"{where}: a datetime in the model, format {fmt!r} in the schema")
    if get_origin(inner) is Literal:
        values = enum_values(target, schemas)
        if values is None or not values <= set(get_args(inner)):
            problems.append(
                f"{where}: the schema allows {values}, the model's literal {get_args(inner)}"
            )
    if isinstance(inner, type) and issubclass(inner, Model):
        name = ref_name(target)
        if name != inner.__schema__:
            problems.append(f"{where}: the schema has {name!r}, the model {inner.__schema__!r}")
    if get_origin(inner) in (list, List):
        (item_tp,) = get_args(inner)
        check_field(f"{where}[]", item_tp, item_schema(target, schemas), schemas, problems)


def check_model(model: Any, schemas: Dict[str, Schema]) -> List[str]:
    name = model.__schema__
    assert name in schemas, f"{model.__name__} mirrors {name}, which the document lacks"
    schema = resolve(schemas[name], schemas)
    props: Dict[str, Schema] = schema.get("properties", {})
    required = set(schema.get("required", []))
    problems: List[str] = []
    fields = {f.name: f for f in dataclasses.fields(model) if f.metadata.get("api", True)}
    for field_name, tp in model.api_fields().items():
        where = f"{model.__name__}.{field_name} ({name})"
        if field_name not in props:
            if not fields[field_name].metadata.get("event_only"):
                problems.append(f"{where}: no such property in the schema")
            continue
        check_field(where, tp, props[field_name], schemas, problems)
        f = fields[field_name]
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        if field_name not in required and not has_default:
            problems.append(f"{where}: optional in the schema, but the model requires it")
    for prop in sorted(required - set(fields) - NOT_IN_MODEL.get(name, set())):
        problems.append(f"{model.__name__} ({name}): required property {prop!r} is missing")
    return problems


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_mirrors_its_schema(model: Any, schemas: Dict[str, Schema]) -> None:
    problems = check_model(model, schemas)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("alias,name", ENUMS, ids=[n for _, n in ENUMS])
def test_enumerations_list_the_same_values(
    alias: Any, name: str, schemas: Dict[str, Schema]
) -> None:
    values = enum_values(schemas[name], schemas)
    assert values is not None, f"{name} is not an enumeration"
    assert set(get_args(alias)) == values


def test_priority_mirrors_its_schema(schemas: Dict[str, Schema]) -> None:
    schema = schemas["Priority"]
    names, number = get_args(models.Priority)
    assert set(get_args(names)) == enum_values(schema["oneOf"][0], schemas)
    assert number is int and schema["oneOf"][1]["type"] == "integer"


@pytest.mark.parametrize("list_name,field_name,item", PAGES, ids=[p[0] for p in PAGES])
def test_lists_hold_the_models(
    list_name: str, field_name: str, item: Any, schemas: Dict[str, Schema]
) -> None:
    schema = resolve(schemas[list_name], schemas)
    assert field_name in schema.get("required", [])
    assert ref_name(schema["properties"][field_name]["items"]) == item.__schema__
    if "next_cursor" in schema["properties"]:
        assert json_types(schema["properties"]["next_cursor"], schemas) == {"string", "null"}


def test_the_checker_sees_a_mismatch(schemas: Dict[str, Schema]) -> None:
    """The check itself fails on a model that does not fit (so a pass means something)."""

    @dataclasses.dataclass(frozen=True)
    class Wrong(Model):
        __schema__ = "TaskError"
        code: int
        message: str
        extra: str
        raw: Dict[str, Any] = dataclasses.field(default_factory=dict, metadata={"api": False})

    problems = check_model(Wrong, schemas)
    assert any("Wrong.code" in p for p in problems), problems
    assert any("Wrong.extra" in p and "no such property" in p for p in problems), problems
    assert any("'retryable' is missing" in p for p in problems), problems


def request_properties(schema: Schema, schemas: Dict[str, Schema]) -> Dict[str, Schema]:
    props: Dict[str, Schema] = resolve(schema, schemas)["properties"]
    return props


def test_submit_body_uses_only_submit_request_properties(
    schemas: Dict[str, Schema],
) -> None:
    body = _api.submit_body(
        "baton__echo",
        {"a": 1},
        priority="high",
        queue="q",
        idempotency_key="k",
        delay=1.5,
        timeout=10,
        max_attempts=3,
        ttl=60,
        group_key="g",
        cache="refresh",
        metadata={"m": 1},
        callback_url="http://127.0.0.1:9/cb",
    )
    props = request_properties(schemas["SubmitRequest"], schemas)
    assert set(body) <= set(props), set(body) - set(props)
    for key, value in body.items():
        assert _json_type(value) in json_types(props[key], schemas), (key, value)
    at = _api.submit_body("baton__echo", run_at="2030-01-01T00:00:00Z")
    assert set(at) <= set(props)


def test_update_body_uses_only_task_update_properties(schemas: Dict[str, Schema]) -> None:
    props = request_properties(schemas["TaskUpdate"], schemas)
    for body in (
        _api.update_body(priority=90, delay=0),
        _api.update_body(run_at="2030-01-01T00:00:00Z"),
    ):
        assert set(body) <= set(props), set(body) - set(props)
        for key, value in body.items():
            assert _json_type(value) in json_types(props[key], schemas), (key, value)


def test_the_paths_the_sdk_calls_exist(document: Schema) -> None:
    calls: List[_api.Call[Any]] = [
        _api.submit({"tool": "x"}),
        _api.submit_batch([{"tool": "x"}]),
        _api.get_task("t"),
        _api.list_tasks(),
        _api.cancel("t"),
        _api.retry("t"),
        _api.update("t", {"priority": 1}),
        _api.result("t"),
        _api.respond("t", {}),
        _api.logs("t"),
        _api.submit_workflow({"name": "w", "steps": []}),
        _api.get_workflow("w"),
        _api.cancel_workflow("w"),
        _api.retry_workflow("w"),
        _api.workflow_result("w"),
        _api.list_workflows(),
        _api.workflow_dag("w"),
        _api.workflow_timeline("w"),
        _api.servers(),
        _api.tools(),
    ]
    paths: Dict[str, Any] = document["paths"]
    templates = {
        p.replace("{id}", "t" if p.startswith("/v1/tasks") else "w"): p for p in paths
    }
    for call in calls:
        template = templates.get(call.path)
        assert template is not None, f"{call.path} is not in the document"
        op = paths[template].get(call.method.lower())
        assert op is not None, f"{call.method} {template} is not in the document"
        known = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert set(call.params) <= known, (template, set(call.params) - known)
    events_path, params, _ = _api.events_request(
        "t", last_event_id=None, logs=True, logs_after=3
    )
    op = paths["/v1/tasks/{id}/events"]["get"]
    assert events_path == "/v1/tasks/t/events"
    assert set(params) <= {p["name"] for p in op["parameters"] if p["in"] == "query"}


# Properties the schema marks required that the node leaves out of some answers: a
# step's `depends_on` when it is empty, and a workflow's `steps` in lists.
OMITTED_IN_ANSWERS = {("StepView", "depends_on"), ("LinkedWorkflow", "steps")}


def test_answers_carry_the_required_properties(
    node: Node, schemas: Dict[str, Schema]
) -> None:
    """Real answers hold what their schemas require (what the models rely on)."""
    from baton_client import Baton

    problems: List[str] = []

    def check(name: str, obj: Dict[str, Any]) -> None:
        for prop in resolve(schemas[name], schemas).get("required", []):
            if prop not in obj and (name, prop) not in OMITTED_IN_ANSWERS:
                problems.append(f"{name}: {prop!r} missing from {obj}")

    with Baton(node.url) as baton:
        sub = baton.submit("baton__sleep", {"ms": 10})
        check("Accepted", sub.raw)
        check("ResultView", baton.wait(sub.task_id, timeout=60).raw)
        check("Linked", baton.get(sub.task_id).raw)
        for task in baton.list(limit=5):
            check("Linked", task.raw)
        check("LogPage", baton.logs(sub.task_id).raw)
        for line in baton.logs(sub.task_id).logs:
            check("LogLine", line.raw)
        for event in baton.watch(sub.task_id):
            check("TimelineEntry", {"step_id": "", **event.raw})
        pending = baton.submit("baton__echo", {}, delay=3600)
        check("CancelAnswer", baton.cancel(pending.task_id).raw)
        wf = baton.submit_workflow(
            {
                "name": "required-properties",
                "steps": [
                    {"id": "a", "tool": "baton__echo"},
                    {"id": "b", "tool": "baton__echo", "depends_on": ["a"]},
                ],
            }
        )
        check("LinkedWorkflow", wf.raw)
        for step in wf.raw["steps"]:
            check("StepView", step)
        result = baton.wait_workflow(wf.workflow_id, timeout=60)
        check("WorkflowResult", result.raw)
        check("WorkflowProgress", result.progress.raw)
        for workflow in baton.list_workflows(limit=5):
            check("LinkedWorkflow", workflow.raw)
        for entry in baton.workflow_timeline(wf.workflow_id):
            check("TimelineEntry", entry.raw)
        for tool in baton.tools():
            check("ToolEntry", tool.raw)
    assert not problems, "\n".join(problems)
