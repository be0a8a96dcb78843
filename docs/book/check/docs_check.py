#!/usr/bin/env python3
"""Runs the book's tutorials against the real binary (started by scripts/docs-check).

Every page listed in docs/book/src/SUMMARY.md runs in order, in a fresh temporary
directory, in one bash session of its own: `cd`, exported variables and files persist
from one block to the next. Code blocks are run or checked according to small HTML
comments placed before them (mdBook does not render HTML comments):

  <!-- run: background name=node wait-for http://127.0.0.1:7420/readyz -->
        runs the next block in the background, in a process group of its own, and
        waits until the URL answers 200 (every background process is stopped at the
        end of the page, even on failure)
  <!-- run: exit=1 timeout=90 -->
        the next block must exit 1 (default 0); it may take up to 90 s (default 60)
  <!-- run: python -->, <!-- run: node -->
        the next block is a program in that language, run in the current directory
  <!-- file: path/name -->
        writes the next block to that file (relative to the current directory)
  <!-- output: contains "x" regex "y" not-contains "z" -->
        checks the output of the last command block; placed before a command block
        (checks that block) or before a `text` block shown as its output (replaces the
        loose comparison described below)
  <!-- skip: reason -->
        the next block is not run; skips are listed at the end
  <!-- stop: node -->
        stops the background process named `node` as Ctrl-C would (SIGINT to its group)
  <!-- hidden:
       commands -->
        runs commands the reader does not see (setup, extra assertions)
  <!-- cleanup:
       commands -->
        runs at the end of the page, after background processes are stopped, even on
        failure
  <!-- ports: 7420 7421 -->
        ports the page uses (default 7420): each is replaced everywhere on the page by
        a free port, so the check never collides with a node of the reader's
  <!-- unique: baton_tutorial -->
        a name replaced everywhere on the page by one unique to this run

Blocks without an annotation: shell blocks (sh, bash, shell) run and must exit 0; a
`text` block after a command is what the reader will see: each of its lines must appear
in the command's output, in order, with runs of spaces compared as one space and `…`
standing for anything (so do ids and times: they are examples); `json` blocks must parse as JSON and `toml` blocks as TOML. Any
other block needs an annotation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

SHELL_LANGS = {"sh", "bash", "shell", "console"}
TEXT_LANGS = {"text", "txt", "output"}
DEFAULT_TIMEOUT = 60.0
WAIT_FOR_TIMEOUT = 60.0
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
ANNOTATION_KEYS = ("run", "file", "output", "skip", "stop", "hidden", "cleanup", "ports", "unique")


# Defined in every page's session, for hidden steps: `wait_until SECONDS 'COMMAND'` runs
# COMMAND until it succeeds, and fails the step when SECONDS pass first.
SESSION_HELPERS = r"""
wait_until() {
    local limit=$1; shift
    local end=$((SECONDS + limit))
    until eval "$*"; do
        if ((SECONDS >= end)); then
            echo "timed out after ${limit} s waiting for: $*" >&2
            return 1
        fi
        sleep 0.2
    done
}
"""


class PageFailure(Exception):
    """A page failed: the message says where and why."""


@dataclass
class Block:
    lang: str
    code: str
    line: int
    annotations: dict = field(default_factory=dict)


@dataclass
class Action:
    kind: str  # "hidden" or "stop"
    arg: str
    line: int


@dataclass
class Page:
    path: str
    name: str
    title: str
    steps: list
    cleanups: list
    ports: list
    uniques: list


# ---------------------------------------------------------------------------- parsing

COMMENT_RE = re.compile(r"<!--(.*?)-->", re.S)
FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)[^`]*$")


def parse_annotation(body: str):
    """Returns (key, value) for an annotation comment, or None for an ordinary comment."""
    text = body.strip()
    m = re.match(r"([a-z-]+):(.*)", text, re.S)
    if not m:
        return None
    key, value = m.group(1), m.group(2)
    if key not in ANNOTATION_KEYS:
        return None
    return key, value.strip() if key not in ("hidden", "cleanup") else value.strip("\n")


def parse_page(path: str) -> Page:
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    name = os.path.splitext(os.path.basename(path))[0]
    title = name
    steps: list = []
    cleanups: list = []
    ports: list = []
    uniques: list = []
    pending: dict = {}
    pending_line = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("# ") and title == name:
            title = line[2:].strip()
        fence = FENCE_RE.match(line)
        if fence:
            indent, marker, lang = fence.group(1), fence.group(2), fence.group(3).lower()
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].strip().startswith(marker[0] * len(marker)):
                j += 1
            if j >= len(lines):
                raise PageFailure(f"{path}:{i + 1}: code block never closed")
            code_lines = [l[len(indent):] if l.startswith(indent) else l for l in lines[start:j]]
            block = Block(lang=lang, code="\n".join(code_lines) + "\n", line=i + 1,
                          annotations=pending)
            steps.append(block)
            pending = {}
            i = j + 1
            continue
        if "<!--" in line:
            # Gather the whole comment, which may span lines.
            j = i
            text = line
            while "-->" not in text[text.index("<!--"):] and j + 1 < len(lines):
                j += 1
                text += "\n" + lines[j]
            for m in COMMENT_RE.finditer(text):
                parsed = parse_annotation(m.group(1))
                if parsed is None:
                    continue
                key, value = parsed
                where = i + 1
                if key == "hidden":
                    steps.append(Action("hidden", value, where))
                elif key == "stop":
                    steps.append(Action("stop", value, where))
                elif key == "cleanup":
                    cleanups.append(Action("cleanup", value, where))
                elif key == "ports":
                    ports.extend(value.replace(",", " ").split())
                elif key == "unique":
                    uniques.extend(value.replace(",", " ").split())
                else:
                    if key in pending:
                        raise PageFailure(f"{path}:{where}: two `{key}:` annotations for one block")
                    pending[key] = value
                    pending_line = where
            i = j + 1
            continue
        i += 1
    if pending:
        raise PageFailure(f"{path}:{pending_line}: annotation {pending} is followed by no code block")
    return Page(path=path, name=name, title=title, steps=steps, cleanups=cleanups,
                ports=ports or ["7420"], uniques=uniques)


def summary_pages(src: str) -> list:
    """The pages in SUMMARY.md order."""
    pages = []
    with open(os.path.join(src, "SUMMARY.md"), encoding="utf-8") as f:
        for m in re.finditer(r"\]\(([^)#]+\.md)\)", f.read()):
            pages.append(os.path.normpath(os.path.join(src, m.group(1))))
    return pages


def parse_run_options(text: str) -> dict:
    opts = {"background": False, "name": None, "wait_for": None, "timeout": DEFAULT_TIMEOUT,
            "exit": 0, "lang": None}
    tokens = shlex.split(text.replace(",", " "))
    k = 0
    while k < len(tokens):
        tok = tokens[k]
        if tok == "background":
            opts["background"] = True
        elif tok in ("python", "node"):
            opts["lang"] = tok
        elif tok == "wait-for":
            k += 1
            opts["wait_for"] = tokens[k]
        elif tok.startswith("name="):
            opts["name"] = tok[5:]
        elif tok.startswith("timeout="):
            opts["timeout"] = float(tok[8:])
        elif tok.startswith("exit="):
            opts["exit"] = int(tok[5:])
        else:
            raise ValueError(f"unknown run option `{tok}`")
        k += 1
    return opts


def parse_output_checks(text: str) -> list:
    tokens = shlex.split(text)
    if len(tokens) % 2:
        raise ValueError(f"output checks come in pairs (kind \"value\"): {text}")
    checks = []
    for k in range(0, len(tokens), 2):
        kind, value = tokens[k], tokens[k + 1]
        if kind not in ("contains", "regex", "not-contains"):
            raise ValueError(f"unknown output check `{kind}`")
        checks.append((kind, value))
    return checks


# ---------------------------------------------------------------------------- checks

def squash(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text)


# In a shown output, ids and times are examples: they stand for any id or time.
EXAMPLE_VALUES = re.compile(
    r"\b[0-9a-f]{8}-(?:[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|…)"  # task ids
    r"|\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"  # RFC 3339
    r"|(?<![0-9a-zA-Z])[0-9a-f]{16,}\b"  # key ids, request ids, webhook ids (after `wh_`)
    r"|\bmsg_\d+_"  # delivery ids
    r"|\b\d+(?:\.\d+)?s\b")  # durations in tables (0.1s)


def loose_match(expected: str, output: str):
    """Each fragment of the expected text (split at lines and at `…`) must appear in the
    output in order, runs of blanks compared as one; ids (UUIDs, or their first eight
    digits then `…`; hex strings of 16 digits or more), RFC 3339 times and durations
    such as `0.1s` stand for any. Returns None or what is missing."""
    expected = EXAMPLE_VALUES.sub("…", expected)
    out = squash(output)
    pos = 0
    for line in expected.split("\n"):
        for fragment in re.split(r"…|\.\.\.", line):
            fragment = squash(fragment).strip()
            if not fragment:
                continue
            found = out.find(fragment, pos)
            if found < 0:
                return fragment
            pos = found + len(fragment)
    return None


def run_checks(checks: list, output: str):
    for kind, value in checks:
        if kind == "contains" and value not in output:
            return f'contains "{value}"'
        if kind == "not-contains" and value in output:
            return f'not-contains "{value}"'
        if kind == "regex" and not re.search(value, output, re.M):
            return f'regex "{value}"'
    return None


# ---------------------------------------------------------------------------- running

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies keep a group "alive" for killpg: look for a live member.
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().split(")")[-1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        except (OSError, IndexError, ValueError):
            continue
    return False


def stop_group(pgid: int, sig=signal.SIGTERM, grace: float = 10.0) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def preview(code: str) -> str:
    first = next((l for l in code.split("\n") if l.strip()), "")
    more = " …" if code.strip().count("\n") else ""
    return (first[:90] + ("…" if len(first) > 90 else "")) + more


def indent(text: str, prefix: str = "    | ") -> str:
    text = text.rstrip("\n")
    if not text:
        return prefix + "(nothing)"
    return "\n".join(prefix + l for l in text.split("\n"))


class Session:
    """One bash process that runs a page's blocks one after another."""

    def __init__(self, workdir: str, env: dict):
        self.workdir = workdir
        self.stage = os.path.join(workdir, ".docs-check")
        os.makedirs(self.stage)
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=workdir, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.stage, "session.err"), "wb"),
            start_new_session=True)
        self.buffer = b""
        self.counter = 0
        self.background: dict = {}  # name -> (pgid, log path)
        self.children: list = []
        # When a failing command ends the session (errexit), its status goes to a file: the
        # standard output may be redirected to the block's output at that moment.
        self.exit_file = os.path.join(self.stage, "session.exit")
        self.send(f"trap 'echo $? > {shlex.quote(self.exit_file)}' EXIT\nset +e\n"
                  + SESSION_HELPERS)

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def read_marker(self, timeout: float):
        """Waits for a DONE or EXIT marker line: returns (kind, rc) or None on timeout."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                parts = line.decode(errors="replace").split()
                if len(parts) == 2 and parts[0] == "__DOCS_DONE__":
                    return parts[0], int(parts[1])
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(timeout=10)
                    status = read_text(self.exit_file).strip()
                    return "__DOCS_EXIT__", int(status) if status else self.proc.returncode
                self.buffer += chunk

    def stage_file(self, content: str, suffix: str = "") -> str:
        self.counter += 1
        path = os.path.join(self.stage, f"block{self.counter}{suffix}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        return path

    def run(self, script: str, timeout: float, expect_exit: int = 0):
        """Runs a script in the session; returns (rc, output). Raises on timeout."""
        path = self.stage_file(script, ".sh")
        out = path + ".out"
        q = shlex.quote
        if expect_exit == 0:
            self.send(f"set -e\nsource {q(path)} > {q(out)} 2>&1 < /dev/null\nset +e\n"
                      f"echo \"__DOCS_DONE__ 0\"\n")
        else:
            self.send(f"set +e\nsource {q(path)} > {q(out)} 2>&1 < /dev/null\n"
                      f"echo \"__DOCS_DONE__ $?\"\n")
        marker = self.read_marker(timeout)
        output = read_text(out)
        if marker is None:
            raise PageFailure(f"timed out after {timeout:.0f} s\n  output so far:\n{indent(output)}")
        kind, rc = marker
        if kind == "__DOCS_EXIT__":
            err = read_text(os.path.join(self.stage, "session.err"))
            raise PageFailure(f"exited with status {rc}\n  output:\n{indent(output + err)}")
        return rc, output

    def start_background(self, name: str, script: str):
        """Starts a script in a process group of its own, in the session's current
        directory and with its exported variables, with default signal dispositions (so
        that a Ctrl-C, SIGINT, stops it as it would in a terminal)."""
        self.counter += 1
        base = os.path.join(self.stage, f"bg{self.counter}")
        q = shlex.quote
        self.run(f"pwd > {q(base + '.cwd')}\nenv -0 > {q(base + '.env')}\n", 10)
        cwd = read_text(base + ".cwd").strip()
        with open(base + ".env", "rb") as f:
            env = dict(item.decode(errors="replace").split("=", 1)
                       for item in f.read().split(b"\0") if b"=" in item)
        log = base + ".log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.background[name] = (proc.pid, log)
        self.children.append(proc)
        return proc.pid, log

    def close(self) -> None:
        for pgid, _ in self.background.values():
            stop_group(pgid)
        for child in self.children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        stop_group(self.proc.pid, grace=3)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_for(url: str, pgid: int, log: str, timeout: float = WAIT_FOR_TIMEOUT) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            raise PageFailure(f"the background process ended before {url} answered\n"
                              f"  its output:\n{indent(read_text(log))}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.2)
    raise PageFailure(f"{url} did not answer 200 within {timeout:.0f} s (last: {last})\n"
                      f"  the process's output:\n{indent(read_text(log))}")


class Runner:
    def __init__(self, args):
        self.repo = os.path.abspath(args.repo)
        self.tools = args.tools
        self.src = os.path.join(self.repo, "docs", "book", "src")
        self.check_dir = os.path.dirname(os.path.abspath(__file__))
        self.skips: list = []
        self.run_id = uuid.uuid4().hex[:8]
        self.show_output = args.show_output

    def page_env(self, workdir: str, ports: dict) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
        env["PATH"] = self.tools + os.pathsep + env.get("PATH", "")
        # The defaults the tutorials rely on, moved to this page's port: where `baton serve`
        # listens without --listen, and where the client commands go without --server.
        env["BATON_LISTEN"] = f"127.0.0.1:{ports.get('7420', '7420')}"
        env["BATON_URL"] = f"http://127.0.0.1:{ports.get('7420', '7420')}"
        env["DOCS_REPO"] = self.repo
        env["DOCS_CHECK"] = self.check_dir
        env["DOCS_WORKDIR"] = workdir
        env["DOCS_NODE_MODULES"] = os.path.join(self.repo, "test-support", "node", "node_modules")
        env["DOCS_PYTHON_VENV"] = os.path.join(self.repo, "test-support", "python", ".venv")
        env["NO_COLOR"] = "1"
        env.pop("RUST_LOG", None)
        return env

    def substitutions(self, page: Page):
        ports = {p: str(free_port()) for p in page.ports}
        uniques = {u: f"{u}_{self.run_id}" for u in page.uniques}
        pg_url = os.environ.get("BATON_TEST_PG_URL")

        def sub(text: str) -> str:
            for old, new in ports.items():
                text = re.sub(rf"(?<![0-9]){re.escape(old)}(?![0-9])", new, text)
            for old, new in uniques.items():
                text = re.sub(rf"\b{re.escape(old)}\b", new, text)
            if pg_url:
                text = text.replace(DEFAULT_PG_URL, pg_url)
            return text

        return ports, uniques, sub

    def run_page(self, page: Page) -> None:
        ports, uniques, sub = self.substitutions(page)
        workdir = tempfile.mkdtemp(prefix=f"baton-docs-{page.name}.")
        env = self.page_env(workdir, ports)
        mapped = ", ".join(f"{k}→{v}" for k, v in list(ports.items()) + list(uniques.items()))
        print(f"\n== {page.title}  ({os.path.relpath(page.path, self.repo)}; {mapped}; in {workdir})",
              flush=True)
        session = Session(workdir, env)
        failure = None
        try:
            self.run_steps(page, session, sub)
        except PageFailure as e:
            failure = e
        finally:
            session.close()
            for action in page.cleanups:
                rc, out = run_detached(sub(action.arg), workdir, env, 60)
                status = "ok" if rc == 0 else f"exit {rc}"
                print(f"  [cleanup] line {action.line}: {status}", flush=True)
                if rc != 0 and failure is None:
                    failure = PageFailure(f"cleanup at line {action.line} failed (exit {rc})\n"
                                          f"  script:\n{indent(action.arg)}\n  output:\n{indent(out)}")
        if failure is not None:
            raise failure
        shutil.rmtree(workdir, ignore_errors=True)

    def ok(self, text: str) -> None:
        print(f"  [ok] {text} ({time.monotonic() - self.step_started:.1f} s)", flush=True)

    def run_steps(self, page: Page, session: Session, sub) -> None:
        last_output = None
        last_where = None
        last_code = ""
        for step in page.steps:
            self.step_started = time.monotonic()
            if isinstance(step, Action):
                where = f"line {step.line}"
                if step.kind == "hidden":
                    label = f"[hidden] {where}: {preview(step.arg)}"
                    try:
                        rc, out = session.run(sub(step.arg), DEFAULT_TIMEOUT)
                    except PageFailure as e:
                        raise PageFailure(f"{label}\n  script:\n{indent(step.arg)}\n  {e}")
                    self.ok(f"{label}")
                elif step.kind == "stop":
                    name = step.arg.strip()
                    if name not in session.background:
                        raise PageFailure(f"{where}: no background process named `{name}`")
                    pgid, log = session.background.pop(name)
                    stop_group(pgid, signal.SIGINT, grace=20)
                    self.ok(f"[stop] {where}: {name} (Ctrl-C)")
                continue

            block: Block = step
            ann = block.annotations
            where = f"line {block.line}"
            code = sub(block.code)
            label = f"{block.lang or 'text'} {where}: {preview(block.code)}"
            try:
                opts = parse_run_options(ann.get("run", ""))
                checks = parse_output_checks(sub(ann["output"])) if "output" in ann else []
            except (ValueError, IndexError) as e:
                raise PageFailure(f"{page.path}:{block.line}: bad annotation: {e}")

            if "skip" in ann:
                reason = ann["skip"] or "(no reason given)"
                self.skips.append((page.path, block.line, reason))
                print(f"  [skip] {label}: {reason}", flush=True)
                continue

            if "file" in ann:
                target = sub(ann["file"])
                staged = session.stage_file(code)
                q = shlex.quote
                session.run(f"mkdir -p \"$(dirname {q(target)})\"\ncat {q(staged)} > {q(target)}\n", 10)
                if block.lang == "json":
                    check_json(code, page.path, block.line)
                elif block.lang == "toml":
                    check_toml(code, page.path, block.line)
                print(f"  [file] {label} → {target}", flush=True)
                continue

            if block.lang in TEXT_LANGS:
                if last_output is None:
                    raise PageFailure(f"{label}\n  an output block follows no command")
                missing = (run_checks(checks, last_output) if checks
                           else loose_match(code, last_output))
                if missing is not None and self.show_output:
                    print(f"  [MISMATCH] {label}: missing {missing!r} (going on: --show-output)")
                    continue
                if missing is not None:
                    raise PageFailure(
                        f"{label}\n  the output of the command at {last_where} does not match"
                        f" (missing: {missing!r})\n  command:\n{indent(last_code)}\n"
                        f"  expected:\n{indent(code)}\n  output:\n{indent(last_output)}")
                self.ok(f"{label} (matches the output at {last_where})")
                continue

            lang = opts["lang"]
            if lang is None and block.lang in SHELL_LANGS:
                lang = "sh"
            if lang is None:
                if block.lang == "json" and not ann:
                    check_json(code, page.path, block.line)
                    self.ok(f"{label} (valid JSON)")
                    continue
                if block.lang == "toml" and not ann:
                    check_toml(code, page.path, block.line)
                    self.ok(f"{label} (valid TOML)")
                    continue
                raise PageFailure(f"{page.path}:{block.line}: a `{block.lang}` block needs an"
                                  " annotation (file:, run:, skip:)")

            if lang == "python":
                staged = session.stage_file(code, ".py")
                script = f"cp {shlex.quote(staged)} ./.docs_block.py\npython3 ./.docs_block.py\n" \
                         "rm -f ./.docs_block.py\n"
            elif lang == "node":
                staged = session.stage_file(code, ".mjs")
                script = f"cp {shlex.quote(staged)} ./.docs_block.mjs\nnode ./.docs_block.mjs\n" \
                         "rm -f ./.docs_block.mjs\n"
            else:
                script = code

            if opts["background"]:
                name = opts["name"] or f"bg{block.line}"
                if name in session.background:
                    raise PageFailure(f"{where}: a background process `{name}` is already running")
                pgid, log = session.start_background(name, script)
                try:
                    if opts["wait_for"]:
                        wait_for(sub(opts["wait_for"]), pgid, log)
                    else:
                        time.sleep(0.5)
                        if not group_alive(pgid):
                            raise PageFailure("the background process ended at once\n"
                                              f"  its output:\n{indent(read_text(log))}")
                except PageFailure as e:
                    raise PageFailure(f"{label}\n  block:\n{indent(code)}\n  {e}")
                self.ok(f"[background {name}] {label}")
                continue

            try:
                rc, output = session.run(script, opts["timeout"], opts["exit"])
            except PageFailure as e:
                raise PageFailure(f"{label}\n  block:\n{indent(code)}\n  {e}")
            if rc != opts["exit"]:
                raise PageFailure(f"{label}\n  block:\n{indent(code)}\n  exited {rc}, expected"
                                  f" {opts['exit']}\n  output:\n{indent(output)}")
            missing = run_checks(checks, output)
            if missing is not None:
                raise PageFailure(f"{label}\n  block:\n{indent(code)}\n  output check failed:"
                                  f" {missing}\n  output:\n{indent(output)}")
            last_output, last_where, last_code = output, where, code
            extra = f", exit {rc}" if rc else ""
            self.ok(f"{label}{extra}")
            if self.show_output:
                print(indent(output), flush=True)


def check_json(code: str, path: str, line: int) -> None:
    try:
        json.loads(code)
    except json.JSONDecodeError as e:
        raise PageFailure(f"{path}:{line}: invalid JSON: {e}")


def check_toml(code: str, path: str, line: int) -> None:
    try:
        tomllib.loads(code)
    except tomllib.TOMLDecodeError as e:
        raise PageFailure(f"{path}:{line}: invalid TOML: {e}")


def run_detached(script: str, cwd: str, env: dict, timeout: float):
    proc = subprocess.Popen(["bash", "-e", "-c", script], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc.pid, grace=2)
        out, _ = proc.communicate()
        return -1, out.decode(errors="replace") + "\n(timed out)"
    return proc.returncode, out.decode(errors="replace")


def find_mdbook():
    found = shutil.which("mdbook")
    if found:
        return found
    candidate = os.path.expanduser("~/.cargo/bin/mdbook")
    return candidate if os.access(candidate, os.X_OK) else None


def build_book(repo: str) -> bool:
    mdbook = find_mdbook()
    if mdbook is None:
        print("\n== mdbook is not installed: the book was not built"
              " (cargo install mdbook --locked --version 0.5.4)")
        return True
    book = os.path.join(repo, "docs", "book")
    proc = subprocess.run([mdbook, "build", book], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    warnings = [l for l in proc.stdout.split("\n") if re.search(r"\b(WARN|warning|ERROR)\b", l)]
    if proc.returncode != 0 or warnings:
        print(f"\n== mdbook build docs/book: FAILED\n{indent(proc.stdout)}")
        return False
    print(f"\n== mdbook build docs/book: ok ({mdbook})")
    return True


def check_links(src: str, pages: list) -> list:
    """Relative links between pages and to images must point at files that exist."""
    problems = []
    listed = set(pages)
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if name.endswith(".md") and name != "SUMMARY.md" and path not in listed:
            problems.append(f"{name} is not listed in SUMMARY.md")
    for page in pages:
        with open(page, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for m in re.finditer(r"\]\(([^)\s]+)\)", text):
            target = m.group(1).split("#")[0]
            if not target or re.match(r"[a-z]+:", target):
                continue
            if not os.path.exists(os.path.join(os.path.dirname(page), target)):
                problems.append(f"{os.path.basename(page)}: link to {target}, which does not exist")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the book's tutorials against the real binary.")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--tools", required=True, help="directory with baton and baton-testserver")
    parser.add_argument("--page", action="append", help="run only this page (repeatable)")
    parser.add_argument("--list", action="store_true", help="list pages and blocks, run nothing")
    parser.add_argument("--no-build", action="store_true", help="do not run mdbook build")
    parser.add_argument("--show-output", action="store_true",
                        help="print every command's output, and go on after an output that does not"
                             " match (to write what a page shows)")
    parser.add_argument("--keep-going", action="store_true",
                        help="run the remaining pages after a failed one")
    args = parser.parse_args()

    runner = Runner(args)
    pages_paths = summary_pages(runner.src)
    problems = check_links(runner.src, pages_paths)
    if problems:
        print("docs-check: broken book structure:\n" + "\n".join("  " + p for p in problems))
        return 1
    try:
        pages = [parse_page(p) for p in pages_paths]
    except PageFailure as e:
        print(f"docs-check: {e}")
        return 1

    if args.page:
        wanted = {p.removesuffix(".md") for p in args.page}
        unknown = wanted - {p.name for p in pages}
        if unknown:
            print(f"docs-check: no page named {', '.join(sorted(unknown))}; pages: "
                  + ", ".join(p.name for p in pages))
            return 2
        pages = [p for p in pages if p.name in wanted]

    if args.list:
        for page in pages:
            print(f"{page.name}: {page.title}")
            for step in page.steps:
                if isinstance(step, Action):
                    print(f"  line {step.line}: [{step.kind}] {preview(step.arg)}")
                else:
                    print(f"  line {step.line}: {step.lang or 'text'} {step.annotations or ''}")
        return 0

    started = time.monotonic()
    failed = []
    passed = 0
    for page in pages:
        try:
            runner.run_page(page)
            passed += 1
        except PageFailure as e:
            print(f"\nFAILED: {page.title} ({os.path.relpath(page.path, runner.repo)})\n  {e}",
                  flush=True)
            failed.append(page.name)
            if not args.keep_going:
                break

    if runner.skips:
        print(f"\nSkipped blocks ({len(runner.skips)}):")
        for path, line, reason in runner.skips:
            print(f"  {os.path.relpath(path, runner.repo)}:{line}: {reason}")

    built = True
    if not args.page and not args.no_build:
        built = build_book(runner.repo)

    elapsed = time.monotonic() - started
    if failed:
        print(f"\nfailed pages: {', '.join(failed)}")
    print(f"pages took {elapsed:.0f} s")
    print(f"docs-check: {passed} passed, {len(failed)} failed")
    return 0 if not failed and built else 1


if __name__ == "__main__":
    sys.exit(main())
