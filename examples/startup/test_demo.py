"""Checks the virtual startup demo end to end against a real node (`test` runs this).

1. `run --yes` launches a product: the CEO task completes, its workflow completes with
   every step, the steps and the CTO's own delegated task descend from the CEO's task,
   QA failed once and was retried by Baton, and the budget was asked for exactly once;
   Ctrl-C then stops the node cleanly.
2. Without --yes, run says where to answer; a declined budget calls the launch off and
   delegates nothing.
3. The node is killed with `kill -9` while the team's steps run; `run` again resumes the
   same launch (same CEO task, same workflow, nothing submitted twice) and finishes it,
   without running again a step that had completed, or asking for the budget again.

Standard library only. Needs BATON_BIN and STARTUP_AGENT_BIN (set by `test`).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = {"market", "forecast", "architecture", "qa", "deploy"}
FINAL = ("completed", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failure(Exception):
    pass


def check(condition, message: str) -> None:
    if not condition:
        raise Failure(message)


class Run:
    """One `run` process, its node's REST API, and what it printed."""

    def __init__(self, data: Path, port: int, *flags: str, yes: bool = True,
                 extra_env: dict[str, str] | None = None):
        self.data, self.url = data, f"http://127.0.0.1:{port}"
        self.out_path = data.parent / f"{data.name}-run-{time.monotonic_ns()}.out"
        self.out = open(self.out_path, "w")
        env = {**os.environ, "STARTUP_DATA_DIR": str(data), "STARTUP_PORT": str(port),
               **(extra_env or {})}
        args = [str(HERE / "run"), *(["--yes"] if yes else []), *flags]
        self.proc = subprocess.Popen(args, env=env,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.out_path.read_text()

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def try_get(self, path: str):
        try:
            return self.get(path)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def events(self, task: str) -> list[str]:
        """The kinds of a finished task's events (its SSE stream ends at the final one)."""
        with urllib.request.urlopen(f"{self.url}/v1/tasks/{task}/events?logs=false", timeout=20) as r:
            return [line.split(":", 1)[1].strip() for line in r.read().decode().splitlines()
                    if line.startswith("event:")]

    def logs(self, task: str) -> list[str]:
        page = self.get(f"/v1/tasks/{task}/logs?limit=1000")
        return [json.dumps(line.get("data")) for line in page["logs"]]

    def ceo_task(self) -> str | None:
        try:
            return json.loads((self.data / "run.json").read_text()).get("ceo_task")
        except (FileNotFoundError, ValueError):
            return None

    def wait_for(self, what: str, predicate, timeout: float = 100):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"run exited ({self.proc.returncode}) while waiting for {what}:\n"
                              + self.output())
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise Failure(f"timed out waiting for {what}:\n" + self.output())

    def task(self, task_id: str):
        return self.get(f"/v1/tasks/{task_id}")

    def ceo_finished(self):
        ceo = self.ceo_task()
        task = ceo and self.try_get(f"/v1/tasks/{ceo}")
        return task if task and task["status"] in FINAL else None

    def node_pid(self) -> int:
        return int((self.data / "node.pid").read_text())

    def interrupt(self) -> int:
        """Ctrl-C: the run stops its node and exits."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=40)
        finally:
            self.out.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def workflow_of(run: Run, ceo: str) -> dict | None:
    """The CEO's workflow, found as `run` finds it: through the CEO task's children, or
    the workflow id the CEO logs."""
    task = run.task(ceo)
    ids = {run.task(c).get("workflow_id") for c in task.get("children") or []} - {None}
    check(len(ids) <= 1, f"the CEO task's children belong to one workflow, got {ids}")
    if not ids:
        page = run.get(f"/v1/tasks/{ceo}/logs?limit=1000")
        ids = {m.group(1) for line in page["logs"]
               for m in [re.search(r"Workflow (wf-[0-9a-f-]+)", json.dumps(line.get("data")))] if m}
        check(len(ids) <= 1, f"the CEO logged one workflow, got {ids}")
    return run.get(f"/v1/workflows/{ids.pop()}") if ids else None


def descendants(run: Run, root: str) -> dict[str, dict]:
    found, todo = {}, [root]
    while todo:
        task = run.task(todo.pop())
        for child in task.get("children") or []:
            if child not in found:
                found[child] = run.task(child)
                todo.append(child)
    return found


def check_launch(run: Run, ceo_id: str) -> dict:
    """What every finished launch must show; returns the workflow."""
    ceo = run.task(ceo_id)
    check(ceo["status"] == "completed", f"the CEO task completed: {ceo['status']} {ceo.get('error')}")
    result = ceo["result"].get("structuredContent") or {}
    check(result.get("launched") is True, f"the launch report says launched: {result}")
    check(str(result.get("url", "")).startswith("https://"), f"the report names the URL: {result}")

    wf = workflow_of(run, ceo_id)
    check(wf is not None, "the CEO started a workflow")
    check(wf["status"] == "completed", f"the workflow completed: {wf['status']} {wf.get('error')}")
    steps = {s["step_id"]: s for s in wf["steps"]}
    check(set(steps) == STEPS, f"the workflow has the five steps: {sorted(steps)}")
    for sid, step in steps.items():
        check(step["state"] == "completed", f"step {sid} completed: {step['state']}")
    check(result.get("workflow_id") == wf["workflow_id"], "the report names the workflow")

    # Lineage: every step is the CEO's child; the CTO's provisioning is the CTO step's child.
    tree = descendants(run, ceo_id)
    for sid, step in steps.items():
        task = tree.get(step["task_id"])
        check(task is not None, f"step {sid}'s task descends from the CEO task")
        check(task["parent_id"] == ceo_id, f"step {sid}'s parent is the CEO task: {task['parent_id']}")
    cto = steps["architecture"]["task_id"]
    provisions = [t for t in tree.values() if t["tool"] == "devops__provision"]
    check(provisions, "the CTO's devops__provision task is in the CEO's tree")
    for t in provisions:
        check(t["parent_id"] == cto, f"devops__provision's parent is the CTO step: {t['parent_id']}")
        check(t["status"] == "completed", f"devops__provision completed: {t['status']}")
    check(any(t["task_id"] in (run.task(cto).get("children") or []) for t in provisions),
          "the CTO step's task lists its delegated task among its children")

    # QA: the first attempt fails with a transient error, Baton retries, the next passes.
    qa = run.task(steps["qa"]["task_id"])
    kinds = run.events(qa["task_id"])
    check(qa["attempt"] >= 2, f"QA ran more than once: attempt {qa['attempt']}")
    check("retry_scheduled" in kinds, f"QA's task shows a retry: {kinds}")
    check(kinds[-1] == "completed", f"QA's task ends completed: {kinds}")
    qa_result = qa["result"].get("structuredContent") or {}
    check(qa_result.get("failed") == 0 and qa_result.get("attempt", 0) >= 2,
          f"QA's sign-off came from a later attempt: {qa_result}")

    # The budget was asked for exactly once.
    ceo_kinds = run.events(ceo_id)
    check(ceo_kinds.count("input_required") == 1,
          f"the CEO asked for input exactly once: {ceo_kinds}")
    asked = [line for line in run.logs(ceo_id) if "Asking for approval" in line]
    check(len(asked) == 1, f"the CEO logged one budget question: {asked}")
    return wf


def scenario_launch(tmp: Path) -> None:
    run = Run(tmp / "launch", free_port())
    try:
        run.wait_for("the launch to finish", run.ceo_finished)
        ceo = run.ceo_task()
        check_launch(run, ceo)
        out = run.output()
        check(f"/ui/#/tasks/{ceo}" in out, "run printed the CEO task's dashboard URL")
        check("/ui/#/workflows/" in out, "run printed the workflow's dashboard URL")
        check("Approve a $250,000 budget to launch Nimbus Notes" in out, "run showed the budget question")
        check("--yes: approved" in out, "run approved through the REST API")
        node = run.node_pid()
    finally:
        code = run.interrupt()
    check(code == 130, f"Ctrl-C ends run with 130, got {code}")
    check(not alive(node), "Ctrl-C stopped the node")
    check("Node stopped (exit 0)" in run.output(), "the node stopped cleanly:\n" + run.output())
    print("ok: launch with --yes (completed, lineage, QA retried, one approval, clean Ctrl-C)")


def scenario_launch_2026(tmp: Path) -> None:
    """The CEO speaking 2026-07-28: its question is an `input_required` result, which
    Baton turns into the task's input request and answers by calling again."""
    run = Run(tmp / "launch-2026", free_port(), extra_env={"STARTUP_CEO_PROTOCOL": "2026-07-28"})
    try:
        run.wait_for("the launch to finish", run.ceo_finished)
        server = run.get("/v1/servers/ceo")
        check(server.get("protocol_version") == "2026-07-28",
              f"the CEO spoke 2026-07-28: {server.get('protocol_version')}")
        check_launch(run, run.ceo_task())
    finally:
        run.interrupt()
    print("ok: launch with a 2026-07-28 CEO (its approval as an input_required round)")


def scenario_decline(tmp: Path) -> None:
    """Without --yes, run says where to answer; a declined budget calls the launch off."""
    run = Run(tmp / "decline", free_port(), yes=False)
    try:
        def asking():
            ceo = run.ceo_task()
            task = ceo and run.try_get(f"/v1/tasks/{ceo}")
            return task if task and task["status"] == "input_required" else None

        task = run.wait_for("the budget question", asking)
        keys = list(task["input_requests"])
        check(len(keys) == 1 and task["input_requests"][keys[0]]["method"] == "elicitation/create",
              f"the CEO asks one elicitation: {task['input_requests']}")
        run.wait_for("run to say where to answer", lambda: "Answer it in the dashboard" in run.output())
        body = json.dumps({"responses": {keys[0]: {"action": "decline"}}}).encode()
        req = urllib.request.Request(f"{run.url}/v1/tasks/{task['task_id']}/input", data=body,
                                     method="POST", headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=10).close()
        done = run.wait_for("the launch to end", run.ceo_finished)
        check(done["status"] == "completed", f"the CEO task completed: {done['status']}")
        result = run.task(done["task_id"])["result"]["structuredContent"]
        check(result.get("launched") is False, f"the launch was called off: {result}")
        workflows = run.get("/v1/workflows?limit=10")["workflows"]
        check(workflows == [], f"no workflow was started: {workflows}")
    finally:
        run.interrupt()
    print("ok: a declined budget calls the launch off, nothing delegated")


def scenario_crash(tmp: Path) -> None:
    data = tmp / "crash"
    first = Run(data, free_port())

    def steps_running():
        ceo = first.ceo_task()
        task = ceo and first.try_get(f"/v1/tasks/{ceo}")
        if not task or task["status"] != "running":
            return None
        wf = workflow_of(first, ceo)
        if wf is None:
            return None
        states = {s["step_id"]: s["state"] for s in wf["steps"]}
        # Kill once a step finished and others run: the market analysis done, the
        # architecture (with its delegated provisioning) under way.
        if states.get("market") == "completed" and states.get("architecture") == "running":
            return wf
        return None

    try:
        wf = first.wait_for("the team to be at work", steps_running)
        ceo = first.ceo_task()
        done_before = {s["step_id"]: s["task_id"] for s in wf["steps"] if s["state"] == "completed"}
        os.kill(first.node_pid(), signal.SIGKILL)
        code = first.proc.wait(timeout=30)
        check(code != 0, "run reports the node's death")
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
        first.out.close()

    second = Run(data, free_port())
    try:
        second.wait_for("the resumed launch to finish", second.ceo_finished, timeout=120)
        check(second.ceo_task() == ceo, "the same CEO task is followed")
        out = second.output()
        check(f"Resuming the unfinished launch of Nimbus Notes: CEO task {ceo}" in out,
              "run said it resumes the unfinished launch:\n" + out)
        check("Submitted" not in out, "nothing new was submitted on resume")
        wf2 = check_launch(second, ceo)
        check(wf2["workflow_id"] == wf["workflow_id"], "the same workflow finished")
        launches = second.get("/v1/tasks?tool=ceo__launch_product&limit=100")["tasks"]
        check([t["task_id"] for t in launches] == [ceo], f"one CEO task in the store: {launches}")
        workflows = second.get("/v1/workflows?limit=100")["workflows"]
        check([w["workflow_id"] for w in workflows] == [wf["workflow_id"]],
              f"one workflow in the store: {[w['workflow_id'] for w in workflows]}")
        for sid, task_id in done_before.items():
            kinds = second.events(task_id)
            check(kinds.count("started") == 1,
                  f"step {sid}, completed before the crash, never ran again: {kinds}")
        ceo_kinds = second.events(ceo)
        check(ceo_kinds.count("started") >= 2, f"the CEO task ran again after the crash: {ceo_kinds}")
        check(any("remembered" in line for line in second.logs(ceo)),
              "the retried CEO remembered the approval")
    finally:
        code = second.interrupt()
    check(code == 130, f"Ctrl-C ends the resumed run with 130, got {code}")
    print(f"ok: kill -9 mid-run and resume (same CEO task, same workflow, "
          f"{len(done_before)} completed step(s) not re-run)")


def main() -> int:
    for var in ("BATON_BIN", "STARTUP_AGENT_BIN"):
        path = os.environ.get(var)
        if not path or not os.access(path, os.X_OK):
            print(f"FAIL: {var} ({path}) is not an executable", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="startup-test-") as tmp:
        try:
            scenario_launch(Path(tmp))
            scenario_launch_2026(Path(tmp))
            scenario_decline(Path(tmp))
            scenario_crash(Path(tmp))
        except Failure as e:
            print(f"FAIL: {e}", file=sys.stderr)
            for log in sorted(Path(tmp).glob("*/node.log")):
                print(f"--- {log} (tail)", file=sys.stderr)
                print("\n".join(log.read_text().splitlines()[-40:]), file=sys.stderr)
            return 1
    print("startup demo: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
