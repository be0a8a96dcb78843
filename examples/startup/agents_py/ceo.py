"""The CEO of the virtual startup: an MCP server on stdio, written with the official MCP
Python SDK. Its one tool, `launch_product`:

1. asks for the budget's approval once (an MCP elicitation: Baton shows the task as
   `input_required`, and the dashboard shows the question); the answer is remembered per
   Baton task, so a retried run (after a crash) does not ask again;
2. delegates the launch to the team as a Baton workflow (MCP tool `workflow_submit`, with
   `_meta["baton/parentTask"]` naming its own task, so the steps become its children, and
   an idempotency key derived from its task, so a retried run finds the same workflow);
3. follows the workflow, reporting progress to its caller as steps finish, and returns
   the launch report.
"""

import asyncio
import json
import os
import sys
from typing import Annotated, Any

from mcp.client.client import Client
from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    MCPServer,
    Resolve,
)
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from common import (
    BATON_URL,
    PARENT_TASK,
    run_stdio_handshake,
    load_state,
    progress,
    save_state,
    task_id,
    work,
)

LOGGER = "ceo"
DEFAULT_PRODUCT = "Nimbus Notes"
DEFAULT_BUDGET = 250_000

server = MCPServer(
    "startup-ceo",
    instructions="The CEO of the virtual startup: launches products by delegating to the team.",
)

STEP_NAMES = {
    "market": "market analysis (data scientist)",
    "forecast": "revenue forecast (data scientist)",
    "architecture": "architecture and staging (CTO, DevOps)",
    "qa": "test plan (QA)",
    "deploy": "production deploy (DevOps)",
}


class BudgetApproval(BaseModel):
    approve: bool = Field(description="Approve the launch budget?")
    budget_usd: int = Field(description="The approved budget in US dollars", ge=0)


def workflow(product: str, budget_usd: int) -> dict[str, Any]:
    """The launch plan: who does what, and what waits for what."""
    return {
        "name": f"launch-{product.lower().replace(' ', '-')}",
        "on_failure": "fail_fast",
        "steps": [
            {"id": "market", "tool": "data-scientist__analyze_market",
             "arguments": {"product": product}},
            {"id": "forecast", "tool": "data-scientist__forecast_revenue",
             "depends_on": ["market"],
             "arguments": {"product": product,
                           "tam_usd": "${steps.market.result.structuredContent.tam_usd}"}},
            {"id": "architecture", "tool": "cto__design_architecture",
             "depends_on": ["market"],
             "arguments": {"product": product,
                           "market_brief": "${steps.market.result.content[0].text}"}},
            {"id": "qa", "tool": "qa__run_test_plan", "depends_on": ["architecture"],
             "retry": {"max_attempts": 3},
             "arguments": {"product": product,
                           "architecture": "${steps.architecture.result.content[0].text}"}},
            {"id": "deploy", "tool": "devops__deploy", "depends_on": ["qa", "forecast"],
             "arguments": {"product": product, "environment": "production",
                           "test_report": "${steps.qa.result.content[0].text}",
                           "forecast": "${steps.forecast.result.content[0].text}"}},
        ],
    }


def structured(result: CallToolResult) -> dict[str, Any]:
    if result.is_error:
        text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
        raise RuntimeError(text or "Baton refused the call")
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def call_arguments(ctx: Context) -> dict[str, Any]:
    params = ctx.request_context.params or {}
    return params.get("arguments") or {}


async def budget_approval(ctx: Context) -> BudgetApproval | Elicit[BudgetApproval]:
    """The board's answer: asked once per Baton task, then remembered.

    A resolver: the SDK asks the question the way the connection's protocol wants it (an
    `elicitation/create` request mid-call, or on 2026-07-28 an `input_required` result that
    Baton answers by calling again), before the tool's body runs."""
    task = task_id(ctx)
    state = load_state("ceo", task) if task else {}
    if "approval" in state:
        if ctx.request_state is None:
            await ctx.info("Budget approval remembered from an earlier attempt of this task: "
                           "not asking again", logger_name=LOGGER)
        return BudgetApproval(**state["approval"])
    args = call_arguments(ctx)
    product = args.get("product", DEFAULT_PRODUCT)
    budget_usd = args.get("budget_usd", DEFAULT_BUDGET)
    if ctx.request_state is None:
        await ctx.info(f"Asking for approval of a ${budget_usd:,} budget", logger_name=LOGGER)
    return Elicit(
        f"CEO: planning the launch of {product}. Approve a ${budget_usd:,} budget to launch {product}? The team (CTO, data "
        f"scientist, DevOps, QA) starts as soon as you approve.",
        BudgetApproval,
    )


def remember_approval(task: str | None, approval: ElicitationResult[BudgetApproval]) -> dict:
    if isinstance(approval, AcceptedElicitation):
        answer = {"approve": approval.data.approve, "budget_usd": approval.data.budget_usd}
    else:
        answer = {"approve": False, "budget_usd": 0}
    if task:
        state = load_state("ceo", task)
        if "approval" not in state:
            state["approval"] = answer
            save_state("ceo", task, state)
    return answer


async def submit(baton: Client, ctx: Context, task: str | None, definition: dict) -> dict:
    """workflow_submit, as a child of this task, idempotent per task."""
    meta = {PARENT_TASK: task} if task else None
    args: dict[str, Any] = {"definition": definition}
    if task:
        args["idempotency_key"] = f"launch-{task}"
    result = await baton.call_tool("workflow_submit", args, meta=meta)
    if result.is_error and task and "idempotency_key" in str(result.content):
        # A node without idempotent workflow submission: remember the workflow ourselves.
        await ctx.warning("This node does not take an idempotency key for workflows; "
                          "remembering the workflow in the agent's state instead", logger_name=LOGGER)
        state = load_state("ceo", task)
        if state.get("workflow_id"):
            return structured(await baton.call_tool(
                "workflow_status", {"workflow_id": state["workflow_id"]}))
        submitted = structured(await baton.call_tool(
            "workflow_submit", {"definition": definition}, meta=meta))
        state["workflow_id"] = submitted["workflow_id"]
        save_state("ceo", task, state)
        return submitted
    return structured(result)


def tolerate_workflow_schema_drift(baton: Client, ctx: Context) -> None:
    """The SDK checks each result's structuredContent against the tool's outputSchema.
    Baton's workflow views leave out a step's empty `depends_on`, which their schema lists
    as required; such a mismatch on a `workflow_*` tool is logged, not fatal."""
    session = baton.session
    strict = session.validate_tool_result

    async def validate(name: str, result: CallToolResult) -> None:
        try:
            await strict(name, result)
        except RuntimeError as error:
            if not name.startswith("workflow_"):
                raise
            print(f"ceo: {name}: result does not match its output schema: {error}".splitlines()[0],
                  file=sys.stderr)

    session.validate_tool_result = validate


def finished_steps(wf: dict) -> dict[str, str]:
    return {s.get("id") or s.get("step_id"): s.get("state") or s.get("status")
            for s in wf.get("steps", [])
            if (s.get("state") or s.get("status")) in ("completed", "failed", "cancelled", "skipped")}


@server.tool()
async def launch_product(
    ctx: Context,
    approval: Annotated[ElicitationResult[BudgetApproval], Resolve(budget_approval)],
    product: str = DEFAULT_PRODUCT,
    budget_usd: int = DEFAULT_BUDGET,
) -> CallToolResult:
    """Launches a product: gets the budget approved, then has the team analyse the market,
    design and provision the architecture, forecast revenue, test and deploy, through a
    Baton workflow; reports progress as the team's steps finish."""
    task = task_id(ctx)
    total = len(STEP_NAMES) + 2
    answer = remember_approval(task, approval)
    if not answer["approve"]:
        await ctx.warning("Budget not approved: the launch is called off", logger_name=LOGGER)
        return CallToolResult(content=[TextContent(text=f"Launch of {product} called off: "
                                                        "the budget was not approved.")],
                              structured_content={"product": product, "launched": False})
    budget = answer["budget_usd"]
    await progress(ctx, 1, total,
                   f"Budget of ${budget:,} approved: delegating to the team (a Baton workflow)", LOGGER)
    try:
        return await delegate(ctx, task, product, budget)
    except Exception as error:  # the caller and the task's log get the reason
        message = f"The launch of {product} failed: {reason(error)}"
        await ctx.error(message, logger_name=LOGGER)
        return CallToolResult(content=[TextContent(text=message)], is_error=True)


def reason(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}" if not str(error) else str(error)


async def delegate(ctx: Context, task: str | None, product: str, budget: int) -> CallToolResult:
    """Runs the launch as a Baton workflow, child of this task, and follows it."""
    total = len(STEP_NAMES) + 2
    if not BATON_URL:
        raise RuntimeError("BATON_URL is not set: the CEO cannot delegate")

    async with Client(f"{BATON_URL}/mcp") as baton:
        tolerate_workflow_schema_drift(baton, ctx)
        wf = await submit(baton, ctx, task, workflow(product, budget))
        wf_id = wf["workflow_id"]
        await ctx.info(f"Workflow {wf_id} is the launch plan: "
                       + ", ".join(STEP_NAMES.values()), logger_name=LOGGER)
        seen: dict[str, str] = {}
        while True:
            wf = structured(await baton.call_tool("workflow_status", {"workflow_id": wf_id}))
            done = finished_steps(wf)
            for step, state in done.items():
                if step not in seen:
                    seen[step] = state
                    what = STEP_NAMES.get(step, step)
                    await progress(ctx, 1 + len(seen), total, f"{what}: {state}", LOGGER)
            if wf.get("status") in ("completed", "failed", "cancelled"):
                break
            await asyncio.sleep(0.5)
        outcome = structured(await baton.call_tool("workflow_result", {"workflow_id": wf_id}))

    if outcome.get("status") != "completed":
        error = outcome.get("error") or wf.get("error") or outcome.get("status")
        raise RuntimeError(f"workflow {wf_id} ended {outcome.get('status')}: {error}")
    deploy = (outcome.get("outputs") or {}).get("deploy") or {}
    live = (deploy.get("structuredContent") or {}).get("url", "production")
    await work(300)
    await progress(ctx, total, total, f"{product} launched: live at {live}", LOGGER)
    text = (f"{product} is launched and live at {live}. Budget ${budget:,}. "
            f"Workflow {wf_id}: {len(seen)} steps done by the team.")
    return CallToolResult(content=[TextContent(text=text)],
                          structured_content={"product": product, "launched": True, "url": live,
                                              "budget_usd": budget, "workflow_id": wf_id,
                                              "steps": seen})


if __name__ == "__main__":
    if os.environ.get("STARTUP_CEO_PROTOCOL") == "2026-07-28":
        # The approval travels as an `input_required` result, and Baton calls again with
        # the answer (its plain-call input rounds).
        server.run("stdio")
    else:
        # It asks a question in the middle of its call: see run_stdio_handshake.
        run_stdio_handshake(server)
