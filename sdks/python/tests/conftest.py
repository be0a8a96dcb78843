"""A real Baton node for the tests: ``$BATON_BIN serve`` on a free port with a fresh
data directory, started once per session and stopped at the end."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import httpx
import pytest

from baton_client import Baton

REPO_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 60.0


def binary(env_var: str, name: str) -> Path:
    """The program named by ``env_var``, else ``<repo>/target/debug/<name>``; fails the
    test run (never skips) when it is missing."""
    given = os.environ.get(env_var)
    path = Path(given) if given else REPO_ROOT / "target" / "debug" / name
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} not found at {path}: build it (cargo build -p {name}) or set "
            f"{env_var} to the binary",
            pytrace=False,
        )
    return path


class Node:
    """A running ``baton serve``."""

    def __init__(self, data_dir: Path, config: Optional[str] = None) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.with_suffix(".log")
        args: List[str] = [
            str(binary("BATON_BIN", "baton")),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
        ]
        env: Dict[str, str] = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
        env["BATON_LOG"] = "info"
        if config is not None:
            config_path = data_dir.with_suffix(".toml")
            config_path.write_text(config)
            env["BATON_CONFIG"] = str(config_path)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True
        )
        self.url = self._wait_for_address()
        self._wait_ready()

    def _wait_for_address(self) -> str:
        lines: "queue.Queue[str]" = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            prefix = "baton listening on "
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        self.stop()
        pytest.fail(f"baton serve did not start; its log:\n{self.log()}", pytrace=False)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"baton serve never became ready; its log:\n{self.log()}", pytrace=False)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="baton-client-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def node(workdir: Path) -> Iterator[Node]:
    n = Node(workdir / "node")
    yield n
    n.stop()


@pytest.fixture
def baton(node: Node) -> Iterator[Baton]:
    with Baton(node.url) as client:
        yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
