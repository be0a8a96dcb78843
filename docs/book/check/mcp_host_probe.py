#!/usr/bin/env python3
"""Plays an MCP host reading its server list, for the book's checks (standard library only).

    mcp_host_probe.py CONFIG.json SERVER [TOOL JSON-ARGUMENTS]

CONFIG is a host's configuration: Claude-style `{"mcpServers": {...}}` or VS Code's
`{"servers": {...}}`. The entry SERVER is either stdio (`command`, `args`, `env`) or
Streamable HTTP (`url`, `headers`; VS Code's `"type": "http"`). The probe connects as a
host would (initialize, notifications/initialized), lists the tools, and calls TOOL when
given. It prints the tools' names, one a line, then the call's text content, and exits 1
on any error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

PROTOCOL = "2025-06-18"


class StdioPeer:
    def __init__(self, entry: dict):
        env = dict(os.environ)
        env.update(entry.get("env") or {})
        self.proc = subprocess.Popen([entry["command"], *entry.get("args", [])], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, message: dict) -> dict | None:
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()
        if "id" not in message:
            return None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the server closed its stdout")
            reply = json.loads(line)
            if reply.get("id") == message["id"] and ("result" in reply or "error" in reply):
                return reply

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class HttpPeer:
    def __init__(self, entry: dict):
        self.url = entry["url"]
        self.headers = dict(entry.get("headers") or {})
        self.session = None

    def send(self, message: dict) -> dict | None:
        headers = {"content-type": "application/json",
                   "accept": "application/json, text/event-stream",
                   "mcp-protocol-version": PROTOCOL, **self.headers}
        if self.session:
            headers["mcp-session-id"] = self.session
        request = urllib.request.Request(self.url, data=json.dumps(message).encode(),
                                         headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            self.session = response.headers.get("mcp-session-id", self.session)
            body = response.read().decode()
            kind = response.headers.get("content-type", "")
        if "id" not in message:
            return None
        if kind.startswith("text/event-stream"):
            for line in body.split("\n"):
                if line.startswith("data:"):
                    reply = json.loads(line[5:])
                    if reply.get("id") == message["id"]:
                        return reply
            raise RuntimeError(f"no answer in the event stream: {body!r}")
        return json.loads(body)

    def close(self) -> None:
        pass


def main() -> int:
    if len(sys.argv) not in (3, 5):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        config = json.load(f)
    servers = config.get("mcpServers") or config.get("servers") or {}
    entry = servers[sys.argv[2]]
    peer = HttpPeer(entry) if "url" in entry else StdioPeer(entry)
    try:
        init = peer.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "docs-host-probe", "version": "1.0.0"}}})
        if "error" in init:
            raise RuntimeError(f"initialize: {init['error']}")
        peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = peer.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
        if "error" in tools:
            raise RuntimeError(f"tools/list: {tools['error']}")
        for tool in tools["result"]["tools"]:
            print(tool["name"])
        if len(sys.argv) == 5:
            call = peer.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                "name": sys.argv[3], "arguments": json.loads(sys.argv[4])}})
            if "error" in call:
                raise RuntimeError(f"tools/call: {call['error']}")
            for block in call["result"].get("content", []):
                if block.get("type") == "text":
                    print(block["text"])
            if call["result"].get("isError"):
                raise RuntimeError("the call's result is an error")
    finally:
        peer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
