#!/usr/bin/env python3
"""Baton against Celery, RQ and Docket on the same no-op workload.

Run it through `bench/peers/run` (which prepares the virtual environment). For every
repetition, every system runs in turn (interleaved), each in a fresh child process with
fresh state (a flushed Redis database, a new Baton data directory or PostgreSQL schema):

  1. enqueue    N tasks from one client, batched where the system has a batch API,
                with nothing consuming them
  2. drain      start consuming; tasks/s from the first completion seen to the last
  3. e2e        consumers running; N tasks submitted one request each by --clients
                concurrent clients; tasks/s from the first submission to the last completion
  4. latency    one client, --rounds sequential submit->result round trips after --warmup
  5. memory     peak RSS of the system's own processes, sampled during (3)

The parent prints one Markdown table of medians and Baton/peer ratios and writes the raw
results as JSON (--out). Timing lives here only: the project's tests never assert it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from importlib.metadata import version as pkg_version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SYSTEMS = ["celery", "rq", "docket", "baton-sqlite", "baton-pg"]
PEERS = ["celery", "rq", "docket"]
BATONS = ["baton-sqlite", "baton-pg"]
MARKER = "baton-bench:peers"  # set in the Redis database this harness owns


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    k = max(0, math.ceil(q / 100.0 * len(sorted_values)) - 1)
    return sorted_values[k]


# --------------------------------------------------------------------------- processes


class Procs:
    """Processes this harness started; stopped by their own ids (and process groups)."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.items: list[tuple[subprocess.Popen, str]] = []

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        logpath = os.path.join(self.workdir, f"{name}.log")
        out = open(logpath, "ab")
        p = subprocess.Popen(
            argv,
            cwd=HERE,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.items.append((p, logpath))
        return p

    def check_alive(self) -> None:
        for p, logpath in self.items:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited ({p.returncode}); log:\n{tail(logpath)}")

    def stop_all(self, grace: float = 15.0) -> None:
        for p, _ in self.items:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p, _ in self.items:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Anything left in the group it leads (e.g. a pool child) is ours too.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.items.clear()


def tail(path: str, n: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")
    except OSError:
        return "(no log)"


class RssSampler(threading.Thread):
    """Samples the summed RSS of some processes and their descendants; keeps the peak."""

    def __init__(self, pids: list[int], interval: float = 0.02):
        super().__init__(daemon=True)
        import psutil

        self.psutil = psutil
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.stopped = threading.Event()

    def sample(self) -> int:
        total = 0
        for root in self.roots:
            try:
                procs = [root] + root.children(recursive=True)
            except self.psutil.NoSuchProcess:
                continue
            for p in procs:
                try:
                    total += p.memory_info().rss
                except self.psutil.NoSuchProcess:
                    pass
        return total

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, self.sample())
            self.samples += 1
            self.stopped.wait(self.interval)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        self.peak = max(self.peak, self.sample())
        return self.peak


# --------------------------------------------------------------------------- systems


class System:
    """One system under test, driven from this (child) process."""

    name = ""

    def __init__(self, args, workdir: str):
        self.args = args
        self.workdir = workdir
        self.procs = Procs(workdir)

    # lifecycle
    def start(self) -> None: ...
    def start_consuming(self) -> None: ...
    def stop(self) -> None:
        self.procs.stop_all()

    # workload
    def enqueue_batched(self, n: int) -> None: ...
    def submit_concurrent(self, n: int, clients: int) -> None: ...
    def completed(self) -> int: ...
    def roundtrip(self) -> None: ...
    def memory_pids(self) -> list[int]:
        return [p.pid for p, _ in self.procs.items]

    def describe(self) -> dict:
        return {}


class RedisPeer(System):
    """Shared by the Redis-based peers: owns one Redis database and flushes only it."""

    def start(self) -> None:
        import redis

        self.r = redis.Redis.from_url(self.args.redis_url)
        size = self.r.dbsize()
        if size and not self.r.exists(MARKER):
            raise SystemExit(
                f"{self.args.redis_url} holds {size} keys that this harness did not write; "
                "pick an empty database with --redis-url"
            )
        self.r.flushdb()
        self.r.set(MARKER, "1")
        self.env = {"BENCH_REDIS_URL": self.args.redis_url, "PYTHONPATH": HERE}

    def stop(self) -> None:
        super().stop()
        try:
            self.r.flushdb()
            self.r.set(MARKER, "1")
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass

    def describe(self) -> dict:
        info = self.r.info("server")
        cfg = {k: self.r.config_get(k).get(k) for k in ("appendonly", "appendfsync", "save")}
        return {"redis_version": info.get("redis_version"), "redis_persistence": cfg}


class OrderedTracker:
    """Counts finished tasks by checking the oldest unfinished ids first, a window at a
    time, in one pipelined round trip: cheap because tasks finish roughly in order."""

    def __init__(self, check_window):
        self.pending: deque[str] = deque()
        self.done = 0
        self.check_window = check_window  # ids -> list[bool]

    def add(self, ids) -> None:
        self.pending.extend(ids)

    def count(self, window: int = 1000) -> int:
        if self.pending:
            ids = [self.pending[i] for i in range(min(window, len(self.pending)))]
            flags = self.check_window(ids)
            for _ in ids:
                self.pending.popleft()
            unfinished = [i for i, f in zip(ids, flags) if not f]
            self.done += len(ids) - len(unfinished)
            self.pending.extendleft(reversed(unfinished))
        return self.done


class Celery(RedisPeer):
    name = "celery"

    def start(self) -> None:
        super().start()
        os.environ["BENCH_REDIS_URL"] = self.args.redis_url
        sys.path.insert(0, HERE)
        import tasks_celery

        self.app = tasks_celery.app
        self.noop = tasks_celery.noop
        self.tracker = OrderedTracker(
            lambda ids: [v is not None for v in self.r.mget([f"celery-task-meta-{i}" for i in ids])]
        )

    def start_consuming(self) -> None:
        self.procs.spawn(
            "celery-worker",
            [sys.executable, "-m", "celery", "-A", "tasks_celery", "worker",
             "--pool", "prefork", "--concurrency", str(self.args.celery_concurrency),
             "--loglevel", "WARNING"],
            self.env,
        )

    def enqueue_batched(self, n: int) -> None:
        from celery import group

        # Celery has no batch publish: a group sends one message per task.
        res = group(self.noop.s() for _ in range(n)).apply_async()
        self.tracker.add([r.id for r in res.results])

    def submit_concurrent(self, n: int, clients: int) -> None:
        ids: list[str] = []

        def client(k: int) -> None:
            for _ in range(k):
                ids.append(self.noop.apply_async().id)

        run_threads(client, n, clients)
        self.tracker.add(ids)

    def completed(self) -> int:
        return self.tracker.count()

    def roundtrip(self) -> None:
        self.noop.delay().get(timeout=30)

    def describe(self) -> dict:
        return {**super().describe(), "worker": (
            f"1 celery worker, prefork pool of {self.args.celery_concurrency} processes; "
            "defaults otherwise (acks_late off, prefetch multiplier 4), Redis result backend")}


class Rq(RedisPeer):
    name = "rq"

    def start(self) -> None:
        super().start()
        from rq import Queue
        from rq.registry import FinishedJobRegistry

        sys.path.insert(0, HERE)
        import tasks_rq

        self.noop = tasks_rq.noop
        self.q = Queue("default", connection=self.r)
        self.finished_key = FinishedJobRegistry(queue=self.q).key

    def start_consuming(self) -> None:
        cls = "rq.worker.SimpleWorker" if self.args.rq_worker == "simple" else "rq.worker.Worker"
        for i in range(self.args.rq_workers):
            self.procs.spawn(
                f"rq-worker-{i}",
                [sys.executable, "-m", "rq.cli", "worker", "--url", self.args.redis_url,
                 "--worker-class", cls, "--path", HERE, "--quiet", "default"],
                self.env,
            )

    def enqueue_batched(self, n: int) -> None:
        for start in range(0, n, self.args.batch):
            k = min(self.args.batch, n - start)
            self.q.enqueue_many([rq_prepare(self.noop) for _ in range(k)])

    def submit_concurrent(self, n: int, clients: int) -> None:
        from rq import Queue

        def client(k: int) -> None:
            q = Queue("default", connection=self.r)
            for _ in range(k):
                q.enqueue(self.noop)

        run_threads(client, n, clients)

    def completed(self) -> int:
        return self.r.zcard(self.finished_key)

    def roundtrip(self) -> None:
        from rq.results import Result

        job = self.q.enqueue(self.noop)
        res = job.latest_result(timeout=30)
        if res is None or res.type != Result.Type.SUCCESSFUL:
            raise RuntimeError(f"rq job {job.id}: no successful result ({res})")

    def describe(self) -> dict:
        kind = ("SimpleWorker (runs jobs in-process)" if self.args.rq_worker == "simple"
                else "Worker (forks a work horse per job)")
        return {**super().describe(), "worker": f"{self.args.rq_workers} rq worker processes, {kind}"}


def rq_prepare(fn):
    from rq import Queue

    return Queue.prepare_data(fn)


class DocketPeer(RedisPeer):
    name = "docket"
    NAME = "bench"

    def start(self) -> None:
        super().start()
        from docket import Docket

        sys.path.insert(0, HERE)
        import tasks_docket

        self.noop = tasks_docket.noop
        self.loop = asyncio.new_event_loop()
        self.docket = Docket(name=self.NAME, url=self.args.redis_url)
        self.loop.run_until_complete(self.docket.__aenter__())
        self.total = 0  # tasks added so far

    def stop(self) -> None:
        try:
            self.loop.run_until_complete(self.docket.__aexit__(None, None, None))
            self.loop.close()
        finally:
            super().stop()

    def start_consuming(self) -> None:
        for i in range(self.args.docket_workers):
            self.procs.spawn(
                f"docket-worker-{i}",
                [sys.executable, "-m", "docket", "worker", "--tasks", "tasks_docket:tasks",
                 "--docket", self.NAME, "--url", self.args.redis_url,
                 "--concurrency", str(self.args.docket_concurrency),
                 "--logging-level", "WARNING", "--name", f"bench-{i}"],
                self.env,
            )

    def enqueue_batched(self, n: int) -> None:
        async def go():
            calls = [self.docket.call(self.noop)() for _ in range(n)]
            await self.docket.add_many(calls, chunk_size=self.args.batch)

        self.loop.run_until_complete(go())
        self.total += n

    def submit_concurrent(self, n: int, clients: int) -> None:
        async def client(k: int) -> None:
            for _ in range(k):
                await self.docket.add(self.noop)()

        async def go():
            await asyncio.gather(*(client(k) for k in split(n, clients)))

        self.loop.run_until_complete(go())
        self.total += n

    def completed(self) -> int:
        # A finished task's stream entry is acknowledged and deleted (terminal.lua), so
        # what is neither in the stream nor in the future queue has finished.
        pipe = self.r.pipeline(transaction=False)
        pipe.xlen(self.docket.stream_key)
        pipe.zcard(self.docket.queue_key)
        in_stream, queued = pipe.execute()
        return self.total - in_stream - queued

    def roundtrip(self) -> None:
        async def go():
            ex = await self.docket.add(self.noop)()
            await ex.get_result(timeout=dt.timedelta(seconds=30))

        self.loop.run_until_complete(go())
        self.total += 1

    def describe(self) -> dict:
        return {**super().describe(), "worker": (
            f"{self.args.docket_workers} docket worker processes, concurrency "
            f"{self.args.docket_concurrency} each (asyncio)")}


class Baton(System):
    def __init__(self, args, workdir: str, store: str):
        super().__init__(args, workdir)
        self.store = store
        self.name = f"baton-{store}"
        self.schema = None
        self.local = threading.local()

    def conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return c

    def request(self, method: str, path: str, body=None) -> tuple[int, dict]:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        c = self.conn()
        try:
            c.request(method, path, body=data, headers=headers)
            resp = c.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, ConnectionError):
            c.close()
            self.local.conn = None
            raise
        return resp.status, (json.loads(raw) if raw else {})

    def start(self) -> None:
        baton = self.args.baton
        if not os.path.isfile(baton):
            raise SystemExit(f"no Baton binary at {baton}: build it or pass --baton PATH")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        data = os.path.join(self.workdir, "baton-data")
        argv = [baton, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data]
        env = {"BATON_LOG": "warn"}
        for k in ("BATON_STORE", "BATON_CONFIG", "BATON_URL", "BATON_WORKERS__CONCURRENCY"):
            os.environ.pop(k, None)
        if self.store == "pg":
            self.schema = f"bench_{secrets.token_hex(4)}"
            cfg = os.path.join(self.workdir, "baton.toml")
            with open(cfg, "w") as f:
                f.write(f'[store]\nschema = "{self.schema}"\n')
            argv += ["--store", self.args.pg_url, "--config", cfg]
        self.procs.spawn("baton", argv, env)
        deadline = time.monotonic() + 60
        while True:
            self.procs.check_alive()
            try:
                status, _ = self.request("GET", "/readyz")
                if status == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("baton did not become ready within 60 s")
            time.sleep(0.05)
        # "Workers stopped" during the enqueue: the node's workers find the queue paused.
        status, body = self.request("POST", "/v1/queues/default/pause")
        if status != 200:
            raise RuntimeError(f"pause: {status} {body}")
        self.total = 0

    def stop(self) -> None:
        self.local = threading.local()
        super().stop()
        if self.schema:
            subprocess.run(
                ["psql", self.args.pg_url, "-qAt", "-c", "SET client_min_messages = warning",
                 "-c", f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"],
                check=False, stdout=subprocess.DEVNULL,
            )

    def start_consuming(self) -> None:
        status, body = self.request("POST", "/v1/queues/default/resume")
        if status != 200:
            raise RuntimeError(f"resume: {status} {body}")

    def enqueue_batched(self, n: int) -> None:
        for start in range(0, n, self.args.batch):
            k = min(self.args.batch, n - start)
            status, body = self.request(
                "POST", "/v1/tasks/batch",
                {"tasks": [{"tool": "baton__echo", "arguments": {}} for _ in range(k)]},
            )
            if status != 202 or len(body.get("tasks", [])) != k:
                raise RuntimeError(f"batch submit: {status} {str(body)[:300]}")
        self.total += n

    def submit_concurrent(self, n: int, clients: int) -> None:
        task = {"tool": "baton__echo", "arguments": {}}

        def client(k: int) -> None:
            for _ in range(k):
                status, body = self.request("POST", "/v1/tasks", task)
                if status != 202:
                    raise RuntimeError(f"submit: {status} {str(body)[:300]}")

        run_threads(client, n, clients)
        self.total += n

    def completed(self) -> int:
        # /v1/stats is a counter read (no store scan); confirm the end with /v1/queues.
        _, stats = self.request("GET", "/v1/stats")
        done = self.total - stats["active_tasks"]
        if done >= self.total:
            _, queues = self.request("GET", "/v1/queues")
            counts = next(q["counts"] for q in queues["queues"] if q["name"] == "default")
            if counts["failed"] or counts["cancelled"]:
                raise RuntimeError(f"baton: tasks failed or were cancelled: {counts}")
            done = counts["completed"]
        return done

    def roundtrip(self) -> None:
        # Baton's one-request form: the POST answers 200 with the outcome once it is done.
        status, body = self.request("POST", "/v1/tasks?wait=30", {"tool": "baton__echo", "arguments": {}})
        if status != 200 or body.get("status") != "completed":
            raise RuntimeError(f"roundtrip: {status} {str(body)[:300]}")
        self.total += 1

    def describe(self) -> dict:
        out = subprocess.run([self.args.baton, "--version"], capture_output=True, text=True)
        d = {
            "baton_version": out.stdout.strip(),
            "worker": "1 baton serve process, default 64 worker slots",
        }
        if self.store == "pg":
            v = subprocess.run(
                ["psql", self.args.pg_url, "-qAt", "-c", "show server_version", "-c", "show synchronous_commit"],
                capture_output=True, text=True,
            ).stdout.splitlines()
            d["postgres_version"], d["postgres_synchronous_commit"] = (v + ["?", "?"])[:2]
        return d


def split(n: int, parts: int) -> list[int]:
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run_threads(fn, n: int, clients: int) -> None:
    errors: list[BaseException] = []

    def wrap(k: int) -> None:
        try:
            fn(k)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(k,)) for k in split(n, clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def make_system(name: str, args, workdir: str) -> System:
    if name == "celery":
        return Celery(args, workdir)
    if name == "rq":
        return Rq(args, workdir)
    if name == "docket":
        return DocketPeer(args, workdir)
    if name == "baton-sqlite":
        return Baton(args, workdir, "sqlite")
    if name == "baton-pg":
        return Baton(args, workdir, "pg")
    raise SystemExit(f"unknown system {name}")


# --------------------------------------------------------------------------- one run


def wait_until(system: System, target: int, timeout: float) -> tuple[float, int, float]:
    """Polls completions until `target`; returns (first time a completion was seen, the
    count then, the time the target was reached)."""
    deadline = time.perf_counter() + timeout
    t_first, c_first, last = None, 0, -1
    while True:
        c = system.completed()
        now = time.perf_counter()
        if t_first is None and c > 0:
            t_first, c_first = now, c
        if c >= target:
            return t_first, c_first, now
        if now > deadline:
            raise TimeoutError(f"{system.name}: {c}/{target} finished after {timeout:.0f} s")
        if c == last:
            system.procs.check_alive()
            time.sleep(0.005)
        last = c


def run_one(name: str, args) -> dict:
    n = args.tasks
    workdir = tempfile.mkdtemp(prefix=f"bench-{name}-")
    system = make_system(name, args, workdir)
    res: dict = {"system": name, "tasks": n}
    try:
        system.start()
        res["setup"] = system.describe()

        # 1. enqueue, nothing consuming
        t0 = time.perf_counter()
        system.enqueue_batched(n)
        t1 = time.perf_counter()
        res["enqueue_s"] = t1 - t0
        res["enqueue_rate"] = n / (t1 - t0)
        log(f"{name}: enqueue {res['enqueue_rate']:,.0f}/s")

        # 2. drain
        t0 = time.perf_counter()
        system.start_consuming()
        t_first, c_first, t_end = wait_until(system, n, args.timeout)
        res["drain_wall_s"] = t_end - t0  # includes the consumers' start-up
        span = t_end - t_first
        res["drain_rate"] = (n - c_first) / span if span > 0 and n > c_first else n / (t_end - t0)
        log(f"{name}: drain {res['drain_rate']:,.0f}/s (wall {res['drain_wall_s']:.2f} s)")

        # 3. submit -> complete, one request per task, with the RSS sampler running
        sampler = RssSampler(system.memory_pids())
        sampler.start()
        t0 = time.perf_counter()
        system.submit_concurrent(n, args.clients)
        t1 = time.perf_counter()
        _, _, t_end = wait_until(system, 2 * n, args.timeout)
        peak = sampler.stop()
        res["e2e_submit_rate"] = n / (t1 - t0)
        res["e2e_rate"] = n / (t_end - t0)
        res["peak_rss_mib"] = peak / 2**20
        res["rss_samples"] = sampler.samples
        log(f"{name}: submit->complete {res['e2e_rate']:,.0f}/s, peak RSS {res['peak_rss_mib']:.0f} MiB")

        # 4. sequential latency
        for _ in range(args.warmup):
            system.roundtrip()
        lat = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            system.roundtrip()
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        res["lat_p50_ms"] = percentile(lat, 50)
        res["lat_p90_ms"] = percentile(lat, 90)
        res["lat_p99_ms"] = percentile(lat, 99)
        res["lat_max_ms"] = lat[-1]
        log(f"{name}: latency p50 {res['lat_p50_ms']:.2f} ms, p99 {res['lat_p99_ms']:.2f} ms")
        system.procs.check_alive()
    finally:
        try:
            system.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return res


# --------------------------------------------------------------------------- report

MEASURES = [
    # key, header, higher is better, format
    ("enqueue_rate", "Enqueue (tasks/s)", True, "{:,.0f}"),
    ("drain_rate", "Drain (tasks/s)", True, "{:,.0f}"),
    ("e2e_rate", "Submit→complete (tasks/s)", True, "{:,.0f}"),
    ("lat_p50_ms", "Latency p50 (ms)", False, "{:.2f}"),
    ("lat_p99_ms", "Latency p99 (ms)", False, "{:.2f}"),
    ("peak_rss_mib", "Peak RSS (MiB)", False, "{:.0f}"),
]
LABEL = {"celery": "Celery", "rq": "RQ", "docket": "Docket",
         "baton-sqlite": "Baton (SQLite)", "baton-pg": "Baton (PostgreSQL)"}


def table(medians: dict[str, dict[str, float]]) -> str:
    systems = [s for s in SYSTEMS if s in medians]
    lines = ["| System | " + " | ".join(h for _, h, _, _ in MEASURES) + " |",
             "|---|" + "---:|" * len(MEASURES)]
    for s in systems:
        cells = [fmt.format(medians[s][k]) for k, _, _, fmt in MEASURES]
        lines.append(f"| {LABEL[s]} | " + " | ".join(cells) + " |")
    for b in (x for x in BATONS if x in medians):
        for p in (x for x in PEERS if x in medians):
            cells = []
            for k, _, higher, _ in MEASURES:
                bv, pv = medians[b][k], medians[p][k]
                r = bv / pv if higher else pv / bv
                cells.append(f"{r:.2f}×")
            lines.append(f"| *{LABEL[b]} vs {LABEL[p]}* | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def background_cpu(seconds: float = 1.0) -> float:
    """Share of all CPUs busy while none of this harness's systems runs (0..1): other
    work on the machine, which skews the next run."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle

    try:
        t0, i0 = read()
        time.sleep(seconds)
        t1, i1 = read()
    except OSError:
        return float("nan")
    return 1 - (i1 - i0) / max(1, t1 - t0)


def in_repo(value):
    """A path inside the repository, as relative to it (for results that get committed)."""
    if isinstance(value, str) and os.path.isabs(value) and value.startswith(ROOT + os.sep):
        return os.path.relpath(value, ROOT)
    return value


def machine() -> dict:
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":")[1].strip()
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "memory": mem, "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=20000, help="N tasks per measure (default 20000)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS))
    ap.add_argument("--baton", default=os.path.join(ROOT, "target", "release", "baton"),
                    help="the baton binary (default target/release/baton)")
    ap.add_argument("--out", help="write the raw results as JSON to this file")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients in the submit→complete measure")
    ap.add_argument("--batch", type=int, default=1000, help="tasks per batch in the enqueue measure")
    ap.add_argument("--rounds", type=int, default=2000, help="sequential round trips for latency")
    ap.add_argument("--warmup", type=int, default=100, help="round trips before the measured ones")
    ap.add_argument("--timeout", type=float, default=900, help="longest wait for a drain, seconds")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15",
                    help="a Redis database this harness owns (it is flushed)")
    ap.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/test",
                    help="PostgreSQL for baton-pg (a fresh schema per run, dropped after)")
    ap.add_argument("--celery-concurrency", type=int, default=2, help="Celery prefork processes")
    ap.add_argument("--rq-workers", type=int, default=2, help="RQ worker processes")
    ap.add_argument("--rq-worker", choices=["simple", "fork"], default="simple",
                    help="RQ SimpleWorker (in-process) or the default forking Worker")
    ap.add_argument("--docket-workers", type=int, default=2, help="Docket worker processes")
    ap.add_argument("--docket-concurrency", type=int, default=64,
                    help="Docket tasks per worker at once (default 64, as Baton's slots; Docket's own default is 10)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    # A TERM (or HUP) unwinds like Ctrl-C does, so every `finally` stops what it started.
    def unwind(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)
    signal.signal(signal.SIGHUP, unwind)

    if args.child:
        print(json.dumps(run_one(args.child, args)))
        return

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}; choose from {', '.join(SYSTEMS)}")
    # As given, for the report: a path inside the repository is shown relative to it.
    shown = os.path.abspath(args.baton)
    baton_shown = os.path.relpath(shown, ROOT) if shown.startswith(ROOT + os.sep) else args.baton
    args.baton = shown
    if any(s in BATONS for s in systems) and not os.path.isfile(args.baton):
        ap.error(f"no Baton binary at {args.baton}: run `cargo build --release` or pass --baton PATH")

    child_argv = [a for a in sys.argv[1:]]
    runs: list[dict] = []
    started = dt.datetime.now(dt.timezone.utc)
    for rep in range(1, args.reps + 1):
        for s in systems:
            bg = background_cpu()
            log(f"rep {rep}/{args.reps}: {s} (other load before it: {bg:.0%} of the CPUs)")
            child = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), *child_argv, "--baton", args.baton, "--child", s],
                stdout=subprocess.PIPE, text=True,
            )
            try:
                stdout, _ = child.communicate()
            except BaseException:
                # Let the child stop its workers and servers before we go.
                child.terminate()
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
                raise
            if child.returncode != 0:
                raise SystemExit(f"{s} failed in repetition {rep} (exit {child.returncode})")
            r = json.loads(stdout.strip().splitlines()[-1])
            r["rep"] = rep
            r["background_cpu"] = bg
            runs.append(r)

    medians = {
        s: {k: statistics.median(r[k] for r in runs if r["system"] == s) for k, _, _, _ in MEASURES}
        for s in systems
    }
    versions = {p: pkg_version(p) for p in ("celery", "kombu", "rq", "pydocket", "redis", "psutil")}
    baton_bin = baton_shown
    setups = {r["system"]: r.get("setup", {}) for r in runs}
    print(f"N = {args.tasks:,} no-op tasks per measure; median of {args.reps} interleaved repetition(s); "
          f"{args.clients} concurrent clients for submit→complete; latency over {args.rounds:,} round trips "
          f"after {args.warmup} warm-up; Baton binary {baton_bin}.")
    print("Ratios are Baton's advantage: Baton ÷ peer for rates, peer ÷ Baton for latency and memory "
          "(above 1× = Baton better).\n")
    print(table(medians))
    print()
    for s in systems:
        print(f"- {LABEL[s]}: {setups.get(s, {}).get('worker', '')}")
    print("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    bgs = [r["background_cpu"] for r in runs]
    print(f"- Other load on the machine just before each run: {min(bgs):.0%}–{max(bgs):.0%} of {os.cpu_count()} CPUs")
    if max(bgs) > 0.2:
        print("- WARNING: the machine was busy with other work before some runs; their figures may be skewed")
    if args.out:
        doc = {
            "started": started.isoformat(timespec="seconds"),
            "command": "bench/peers/run " + " ".join(map(in_repo, sys.argv[1:])),
            "options": {k: in_repo(v) for k, v in vars(args).items() if k not in ("child", "baton")},
            "baton_binary": baton_bin,
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip(),
            "machine": machine(),
            "versions": versions,
            "setup": setups,
            "medians": medians,
            "runs": runs,
        }
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        log(f"raw results in {args.out}")


if __name__ == "__main__":
    main()
