"""What the Python agents share: pace, state directory, progress with log lines, and the
Baton task a call runs for."""

import asyncio
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPDeprecationWarning

# MCP logging and sampling are deprecated by the 2026-07-28 revision, yet still served
# (Baton shows log messages as the task's logs): keep stderr free of the warnings.
warnings.simplefilter("ignore", MCPDeprecationWarning)

PARENT_TASK = "baton/parentTask"

PACE = float(os.environ.get("STARTUP_PACE", "1"))
STATE_DIR = Path(os.environ.get("STARTUP_STATE_DIR", ".state"))
STATE_DIR.mkdir(parents=True, exist_ok=True)
BATON_URL = os.environ.get("BATON_URL", "").rstrip("/")
USE_SAMPLING = os.environ.get("STARTUP_USE_SAMPLING", "") not in ("", "0")


def task_id(ctx: Context) -> str | None:
    """The Baton task this call runs for (Baton names it in the request's `_meta`)."""
    meta = ctx.request_context.meta or {}
    value = meta.get(PARENT_TASK)
    return value if isinstance(value, str) else None


def seed(text: str) -> int:
    """A stable number from a text: the same product always gets the same "data"."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


async def work(ms: float) -> None:
    """Simulated effort, scaled by STARTUP_PACE."""
    await asyncio.sleep(ms * PACE / 1000)


async def progress(ctx: Context, done: float, total: float, message: str, logger: str) -> None:
    """Reports progress with a readable message, and logs the message (MCP logging)."""
    await ctx.report_progress(done, total, message)
    await ctx.info(message, logger_name=logger)


def state_path(kind: str, key: str) -> Path:
    return STATE_DIR / f"{kind}-{re.sub(r'[^A-Za-z0-9-]', '_', key)}.json"


def load_state(kind: str, key: str) -> dict[str, Any]:
    try:
        return json.loads(state_path(kind, key).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def save_state(kind: str, key: str, state: dict[str, Any]) -> None:
    path = state_path(kind, key)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)



def run_stdio_handshake(server: MCPServer) -> None:
    """Serves `server` on stdio with the initialize handshake only (up to 2025-11-25).

    On 2026-07-28 a question for the user (an elicitation, a sampling request) travels as
    an `input_required` result, and the call is made again with the answer; on
    2025-11-25 it is an `elicitation/create` (or `sampling/createMessage`) request in the
    middle of the call, which Baton relays for every server, and the SDK picks the form
    that fits the connection. Refusing the 2026-07-28 `server/discover` probe makes Baton
    connect with `initialize`; the Rust agents, which ask nothing, speak 2026-07-28."""
    low = server._lowlevel_server

    async def serve() -> None:
        async with stdio_server() as (read, write), low.lifespan(low) as state:
            await serve_loop(low, read, write, lifespan_state=state,
                             init_options=low.create_initialization_options())

    anyio.run(serve)
