"""The official MCP Python SDK client (`mcp`, 2.x) driving Baton's /mcp, for Baton's tests.

    python py_client.py <mcp-url | stdio:<json array: command and args>> <scenario> [json-args]

With `stdio:` the SDK's stdio client starts that command (e.g. `baton mcp`) with this
process's environment and speaks over its stdin and stdout; its stderr passes through.
Otherwise the argument is a Streamable HTTP endpoint.

The client connects the SDK's default way (`mode="auto"`: `server/discover` at the newest
protocol, falling back to the `initialize` handshake); `args.mode` ("legacy", "auto" or a
2026-era version) overrides that. It declares sampling and elicitation: it answers sampling
with `args.sample` (or "sampled by the client", model "test-model") and elicitation with
action accept and `args.answer` as content. Both are answered whichever way the server
asks: a server-to-client request, or an `input_required` result the SDK then retries.

Prints one JSON object as its last stdout line: what the client saw. Scenarios:
  list                                  tools/list
  call  {tool, arguments, sample?, answer?}  a plain tools/call (no task) with progress
Every output carries protocolVersion (the negotiated one), capabilities (the server's),
samplings and elicitations (the params of each request answered, in order) and logs.
A failure prints {"error": {type, message, code?, data?}} instead and exits with 1.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.client import Client, ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

CALL_TIMEOUT_SECONDS = 60.0


def wire(model: BaseModel) -> Any:
    """A model as it came over the wire: camelCase keys, and only the fields the peer sent
    (not the SDK's defaults, such as a `resultType` a 2025 server never sends)."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)


def target(spec: str) -> StdioServerParameters | str:
    if spec.startswith("stdio:"):
        command, *args = json.loads(spec[len("stdio:") :])
        # The SDK passes only a safe default environment unless told otherwise.
        return StdioServerParameters(command=command, args=args, env=dict(os.environ))
    return spec


async def run(spec: str, scenario: str, args: dict[str, Any]) -> dict[str, Any]:
    samplings: list[Any] = []
    elicitations: list[Any] = []
    logs: list[Any] = []

    async def on_sampling(
        _ctx: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        samplings.append(wire(params))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=args.get("sample", "sampled by the client")),
            model="test-model",
            stop_reason="endTurn",
        )

    async def on_elicitation(_ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        elicitations.append(wire(params))
        return types.ElicitResult(action="accept", content=args.get("answer", {}))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(wire(params))

    client = Client(
        target(spec),
        mode=args.get("mode", "auto"),
        client_info=types.Implementation(name="baton-test-py", version="1.0.0"),
        sampling_callback=on_sampling,
        elicitation_callback=on_elicitation,
        logging_callback=on_log,
        read_timeout_seconds=CALL_TIMEOUT_SECONDS,
        # Every list goes to Baton: the tests look at what it answers now.
        cache=None,
    )
    async with client:
        out: dict[str, Any] = {
            "protocolVersion": client.protocol_version,
            "capabilities": wire(client.server_capabilities),
        }
        if scenario == "list":
            out["tools"] = [wire(tool) for tool in (await client.list_tools()).tools]
        elif scenario == "call":
            progress: list[Any] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                entry: dict[str, Any] = {"progress": value}
                if total is not None:
                    entry["total"] = total
                if message is not None:
                    entry["message"] = message
                progress.append(entry)

            result = await client.call_tool(
                args["tool"],
                args.get("arguments") or {},
                progress_callback=on_progress,
            )
            out["result"] = wire(result)
            out["progress"] = progress
        else:
            raise ValueError(f"unknown scenario {scenario}")
        out["elicitations"] = elicitations
        out["samplings"] = samplings
        out["logs"] = logs
    return out


def describe(error: BaseException) -> dict[str, Any]:
    # Task groups wrap what failed inside them; report the first real cause.
    while isinstance(getattr(error, "exceptions", None), tuple) and error.exceptions:
        error = error.exceptions[0]
    described: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, MCPError):
        described["code"] = error.error.code
        described["message"] = error.error.message
        if error.error.data is not None:
            described["data"] = error.error.data
    return described


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    spec, scenario = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    try:
        out = anyio.run(run, spec, scenario, args)
    except Exception as error:  # noqa: BLE001 - the tests read the failure from stdout
        print(json.dumps({"error": describe(error)}), flush=True)
        return 1
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
