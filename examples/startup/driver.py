"""Runs the virtual startup demo: starts a Baton node with the five agents, launches a
product through the CEO (or resumes the unfinished launch found in the data directory),
and follows it in the terminal. `run` prepares the binaries and the Python environment,
then runs this; see README.md. Standard library only."""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOL = "ceo__launch_product"
AGENT_TOOLS = [TOOL, "cto__design_architecture", "data-scientist__analyze_market",
               "data-scientist__forecast_revenue", "devops__provision", "devops__deploy",
               "qa__run_test_plan"]


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def say(message: str = "") -> None:
    print(message, flush=True)


class Node:
    """A `baton serve` process with the demo's configuration."""

    def __init__(self, baton: str, data: Path, port: int, env: dict[str, str]):
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = data / "node.log"
        log = open(self.log_path, "ab")
        # Baton reads BATON_* variables as configuration (BATON_BIN would be an unknown
        # key `bin`): the node gets none of the ones that name things for this script.
        node_env = {k: v for k, v in os.environ.items() if k not in ("BATON_BIN", "BATON_URL")}
        self.proc = subprocess.Popen(
            [baton, "serve", "--config", str(HERE / "baton.toml"),
             "--data-dir", str(data / "node"), "--listen", f"127.0.0.1:{port}"],
            cwd=HERE, env={**node_env, **env, "STARTUP_BATON_URL": self.url},
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            # Its own session: Ctrl-C in the terminal reaches this script, which stops the
            # node cleanly (SIGTERM), instead of killing both at once.
            start_new_session=True,
        )
        (data / "node.pid").write_text(f"{self.proc.pid}\n")

    def request(self, method: str, path: str, body=None, timeout: float = 10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def get(self, path: str):
        status, body = self.request("GET", path)
        if status >= 400:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the node exited ({self.proc.returncode}); see {shown(self.log_path)}")
            try:
                status, body = self.request("GET", "/readyz", timeout=2)
                if status == 200:
                    return
                last = body
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the node was not ready within {timeout:.0f} s: {last}")

    def wait_agents(self, timeout: float = 90) -> None:
        """Until every agent's tools are listed (a slow start makes an agent's first
        connection fail; Baton connects again, but /readyz no longer waits for it)."""
        deadline = time.monotonic() + timeout
        missing = set(AGENT_TOOLS)
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the node exited ({self.proc.returncode}); see {shown(self.log_path)}")
            status, body = self.request("GET", "/v1/tools")
            if status == 200:
                missing = set(AGENT_TOOLS) - {t["name"] for t in body["tools"]}
                if not missing:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"agents not connected within {timeout:.0f} s: {sorted(missing)}")

    def stop(self) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            # As a listener would: a port left in TIME_WAIT by a previous run is free.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def answer_text(request: dict) -> str:
    params = request.get("params") or {}
    return params.get("message") or json.dumps(params)


class Follower:
    """Prints what changes: the CEO's progress, questions, the workflow's steps."""

    def __init__(self, node: Node, ceo: str, yes: bool, budget: int):
        self.node, self.ceo, self.yes, self.budget = node, ceo, yes, budget
        self.last_message = None
        self.asked: set[str] = set()
        self.workflow: str | None = None
        self.steps: dict[str, tuple] = {}

    def find_workflow(self, task: dict) -> None:
        """The CEO's workflow: its steps are the CEO task's children; the CEO also logs
        its id (for a node that does not record workflow steps as children)."""
        if self.workflow:
            return
        for child in task.get("children") or []:
            status, view = self.node.request("GET", f"/v1/tasks/{child}")
            if status == 200 and view.get("workflow_id"):
                self.workflow = view["workflow_id"]
                break
        else:
            status, page = self.node.request("GET", f"/v1/tasks/{self.ceo}/logs?limit=1000")
            lines = page.get("logs", []) if status == 200 and isinstance(page, dict) else []
            for line in lines:
                found = re.search(r"Workflow (wf-[0-9a-f-]+)", json.dumps(line.get("data")))
                if found:
                    self.workflow = found.group(1)
                    break
        if self.workflow:
            say(f"  Workflow:  {self.node.url}/ui/#/workflows/{self.workflow}")

    def question(self, task: dict) -> None:
        requests = task.get("input_requests") or {}
        new = {k: v for k, v in requests.items() if k not in self.asked}
        if not new:
            return
        for key, request in new.items():
            self.asked.add(key)
            say(f"? The CEO asks: {answer_text(request)}")
        if self.yes:
            responses = {k: {"action": "accept",
                             "content": {"approve": True, "budget_usd": self.budget}}
                         for k in new}
            status, body = self.node.request("POST", f"/v1/tasks/{self.ceo}/input",
                                             {"responses": responses})
            if status >= 400:
                raise RuntimeError(f"answering the CEO: {status} {body}")
            say(f"  --yes: approved ${self.budget:,} (POST /v1/tasks/{self.ceo}/input)")
        else:
            say(f"  Answer it in the dashboard: {self.node.url}/ui/#/tasks/{self.ceo}")
            say("  (or run again with --yes, or POST /v1/tasks/{id}/input {\"responses\": …})")

    def step_lines(self) -> None:
        if not self.workflow:
            return
        status, wf = self.node.request("GET", f"/v1/workflows/{self.workflow}")
        if status != 200:
            return
        for step in wf.get("steps", []):
            state, attempt = step.get("state"), step.get("attempt")
            message = step.get("progress_message")
            if state == "running" and step.get("task_status") == "pending" and attempt:
                # Between attempts: say why the last one failed.
                state, message = "retrying", self.last_error(step)
            key = (state, attempt, message)
            if self.steps.get(step["step_id"]) == key:
                continue
            self.steps[step["step_id"]] = key
            if state == "pending" and not attempt:
                continue
            extra = f" (attempt {attempt})" if attempt and attempt > 1 else ""
            detail = f": {message}" if message and state in ("running", "retrying") else ""
            say(f"    [{step['step_id']:<12}] {state}{extra}{detail}")

    def last_error(self, step: dict) -> str | None:
        error = step.get("error")
        if not error and step.get("task_id"):
            status, task = self.node.request("GET", f"/v1/tasks/{step['task_id']}")
            error = task.get("error") if status == 200 else None
        return f"attempt {step['attempt']} failed: {error.get('message')}" if error else None

    def follow(self) -> dict:
        while True:
            if not self.node.alive():
                raise RuntimeError(f"the node stopped; see {shown(self.node.log_path)}")
            task = self.node.get(f"/v1/tasks/{self.ceo}")
            self.find_workflow(task)
            message = task.get("progress_message")
            if message and message != self.last_message:
                self.last_message = message
                pct = f"{task['progress'] * 100:3.0f}%" if task.get("progress") is not None else "   "
                say(f"  CEO {pct}  {message}")
            if task["status"] == "input_required":
                self.question(task)
            self.step_lines()
            if task["status"] in ("completed", "failed", "cancelled"):
                return task
            time.sleep(0.4)


def main() -> int:
    p = argparse.ArgumentParser(prog="run", description=__doc__)
    p.add_argument("--yes", action="store_true", help="approve the budget through the REST API")
    p.add_argument("--fresh", action="store_true", help="wipe the data directory first")
    p.add_argument("--exit", action="store_true",
                   help="stop the node when the launch is over (default: keep the dashboard up until Ctrl-C)")
    p.add_argument("--product", default="Nimbus Notes")
    p.add_argument("--budget", type=int, default=250_000)
    args = p.parse_args()

    baton = os.environ["BATON_BIN"]
    data = Path(os.environ.get("STARTUP_DATA_DIR", HERE / ".data")).resolve()
    if args.fresh and data.exists():
        shutil.rmtree(data)
        say(f"Wiped {shown(data)}")
    data.mkdir(parents=True, exist_ok=True)
    env = {
        "STARTUP_STATE_DIR": str(data / "agents"),
        "STARTUP_PACE": os.environ.get("STARTUP_PACE", "1"),
    }
    port = free_port(int(os.environ.get("STARTUP_PORT", "7420")))
    node = Node(baton, data, port, env)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        say(f"Baton node starting at {node.url} (log: {shown(node.log_path)})")
        node.wait_ready()
        node.wait_agents()
        say(f"Dashboard: {node.url}/ui/")
        run_file = data / "run.json"
        run = json.loads(run_file.read_text()) if run_file.exists() else {}
        ceo = None
        if run.get("ceo_task"):
            status, task = node.request("GET", f"/v1/tasks/{run['ceo_task']}")
            if status == 200 and task["status"] not in ("completed", "failed", "cancelled"):
                ceo = run["ceo_task"]
                say(f"Resuming the unfinished launch of {run.get('product')}: CEO task {ceo} "
                    f"({task['status']}, attempt {task['attempt']})")
            elif status == 200:
                say(f"The previous launch is over ({task['status']}): launching again")
        if ceo is None:
            # The key is written down before submitting: a crash in between submits the
            # same task again, which the key makes the one already stored.
            run = {"product": args.product, "budget_usd": args.budget,
                   "idempotency_key": f"launch-{uuid.uuid4()}"}
            run_file.write_text(json.dumps(run))
            status, body = node.request("POST", "/v1/tasks", {
                "tool": TOOL,
                "arguments": {"product": args.product, "budget_usd": args.budget},
                "idempotency_key": run["idempotency_key"],
                "max_attempts": 5,
            })
            if status >= 400:
                raise RuntimeError(f"submitting {TOOL}: {status} {body}")
            ceo = body["task_id"]
            run["ceo_task"] = ceo
            run_file.write_text(json.dumps(run))
            say(f"Submitted {TOOL} for {args.product}: CEO task {ceo}")
        say("Watch it live:")
        say(f"  CEO task:  {node.url}/ui/#/tasks/{ceo}")
        follower = Follower(node, ceo, args.yes, run.get("budget_usd", args.budget))
        task = follower.follow()
        say()
        if task["status"] == "completed":
            result = task.get("result") or {}
            text = " ".join(c.get("text", "") for c in result.get("content", []))
            say(f"Done: {text}")
        else:
            say(f"The launch ended {task['status']}: {json.dumps(task.get('error'))}")
        if not args.exit:
            say(f"The dashboard stays up at {node.url}/ui/#/tasks/{ceo} — Ctrl-C to stop the node.")
            while node.alive():
                time.sleep(0.5)
        return 0 if task["status"] == "completed" else 1
    except KeyboardInterrupt:
        say("\nStopping the node…")
        return 130
    except RuntimeError as e:
        say(f"error: {e}")
        return 1
    finally:
        node.stop()
        if node.proc.returncode is not None:
            say(f"Node stopped (exit {node.proc.returncode}).")


if __name__ == "__main__":
    sys.exit(main())
