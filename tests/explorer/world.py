"""The world a schedule runs in, and the run itself: the sandbox's token server and API, a redis-server of
the explorer's own (or a file cache), task processes sharing one rotating refresh-token connection, and
the steps of the schedule applied to them as it says. What happened is kept for the invariants."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection
from tests.explorer.schedule import TOKEN_FAULTS, Schedule, Step
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
#: Airflow's supervisor SIGKILLs a task this long after its SIGTERM.
KILL_GRACE_SECONDS = 5.0
CHECK = """
import json
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
hook = OAuth2Hook("oauth2_default")
try:
    hook.request("GET", "/items", params={"per_page": 1})
    print(json.dumps({"ok": True}))
except Exception as error:
    print(json.dumps({"ok": False, "error": type(error).__name__, "message": str(error)}))
"""
#: A scan task: dag.test() of tests/dags/explorer_scan.py in a process of its own (Airflow's task runner,
#: its SIGTERM handler calling on_kill, the real task_state_store); one logical date per scan, so that a
#: second run of it is a clear of the same task instance.
SCAN = """
import os
import pendulum
from tests.integration.conftest import dagbag

bag = dagbag(dag_folder=os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "explorer_scan.py"))
run = bag.get_dag("explorer_scan").test(logical_date=pendulum.parse(os.environ["EXPLORER_LOGICAL_DATE"]))
print("dag.test() ended:", run.state, flush=True)
"""
#: The API's quota in schedules that declare it (the sandbox counts an exact sliding window, per credential).
#: Both bind: 2 at once with 60 ms pages would allow about 33 a second. The connection declares the rate a
#: quarter below the API's: a permit is counted when granted, the API counts the request when it arrives,
#: and a process busy stopping (a scan's SIGTERM) sent a granted page late enough that 21 arrived within
#: one second where 20 were declared and enforced (seed 51, 2 runs of 4). Requests at once are declared as
#: enforced: a lease is held until the answer.
QUOTA_RATE, QUOTA_AT_ONCE, DECLARED_RATE = "20/second", 2, "15/second"
#: Items of the sandbox's generic API served to the scans (page_number: 50 a page, offset: 40).
SCAN_ITEMS = 600
#: Milliseconds the API takes for a page of the scans: a scan lasts a few seconds, long enough to stop.
SCAN_PAGE_MS = 60
TEST_BUTTON = """
import json
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
ok, message = OAuth2Hook("oauth2_default").test_connection()
print(json.dumps({"ok": ok, "message": message}))
"""


@dataclass
class Worker:
    index: int
    style: str
    process: subprocess.Popen[bytes]
    journal: Path
    log: Path
    started: float = field(default_factory=time.time)


@dataclass
class Outcome:
    """What a schedule left behind, for the invariants."""

    schedule: Schedule
    events: list[dict[str, Any]]
    journal: list[dict[str, Any]]
    refresh_log: list[dict[str, Any]]
    stats: dict[str, Any]
    final: dict[str, Any]
    tests_pressed: list[dict[str, Any]]
    logs: str
    issued: list[str]
    scans: list[dict[str, Any]] = field(default_factory=list)
    #: The sandbox's quota rule and its counters (``served``, ``refused_epoch``, ``peak_in_flight``), if declared.
    quota: dict[str, Any] = field(default_factory=dict)


class World:
    """Runs one schedule (:meth:`run`) against a sandbox shared by every schedule of an exploration."""

    def __init__(self, sandbox: Sandbox, schedule: Schedule, folder: Path) -> None:
        self.sandbox, self.schedule, self.folder = sandbox, schedule, folder
        self.redis: RedisServer | None = None
        self.workers: list[Worker] = []
        self.events: list[dict[str, Any]] = []
        self.tests_pressed: list[dict[str, Any]] = []
        self._guard = threading.RLock()  # _replace notes while it holds it
        self._timers: list[threading.Thread] = []
        self.env: dict[str, str] = {}
        self.stop_file = folder / "stop"
        self.started = 0.0
        self.scans: list[dict[str, Any]] = []
        self._scan_threads: list[threading.Thread] = []

    # ---- set-up -------------------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        s = self.schedule
        cache = self.redis.url() if self.redis is not None else "file"
        conn = oauth2_connection(self.sandbox.url, grant_type="refresh_token", token_cache=cache)
        conn["extra"] |= {"timeout": s.timeout, "max_retries": 3, "refresh_reuse_interval": s.reuse_seconds}
        conn["extra"]["refresh_token"] = self.sandbox.seed_refresh_token(conn["login"])
        if s.quota:
            conn["extra"] |= {"rate_limit": DECLARED_RATE, "max_in_flight": QUOTA_AT_ONCE}
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AIRFLOW_CONN_OAUTH2_DEFAULT": json.dumps(conn),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": str(self.folder / "tokens"),
        }

    def note(self, kind: str, **details: Any) -> None:
        with self._guard:
            self.events.append({"at": time.time(), "kind": kind, **details})

    def _start_worker(self, index: int, style: str) -> Worker:
        journal, log = self.folder / f"worker-{index}.jsonl", self.folder / f"worker-{index}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.explorer.worker", str(journal), str(self.stop_file), style],
                cwd=ROOT, env=self.env, stdout=sink, stderr=subprocess.STDOUT,
            )
        worker = Worker(index, style, process, journal, log)
        self.note("worker_started", worker=index, pid=process.pid)
        return worker

    # ---- the run ------------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        s = self.schedule
        shutil.rmtree(self.folder, ignore_errors=True)  # a replay starts clean: no journal, no stop file left over
        self.folder.mkdir(parents=True)
        self.sandbox.reset()
        self.sandbox.configure(
            lifetimes={"oauth2": s.lifetime}, refresh_reuse_seconds=s.reuse_seconds, sizes={"oauth2.items": SCAN_ITEMS}
        )
        self.sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=SCAN_PAGE_MS)
        if s.quota:
            self.sandbox.add_quota(vendor="oauth2", rates=[QUOTA_RATE], max_in_flight=QUOTA_AT_ONCE, algorithm="sliding")
        if s.backend == "redis":
            self.redis = RedisServer().start()
        try:
            self.env = self._environment()
            self.workers = [self._start_worker(i, style) for i, style in enumerate(s.workers)]
            self._wait_ready()
            self.started = time.time()
            self.note("started")
            for step in s.steps:
                time.sleep(max(0.0, self.started + step.at - time.time()))
                self._apply(step)
            time.sleep(max(0.0, self.started + s.duration - time.time()))
            self.sandbox.clear_faults()
            self._finish()
            final = self._run_json(CHECK, "final-check")
            self.note("final_check", **final)
            return self._outcome(final)
        finally:
            for worker in self.workers:
                if worker.process.poll() is None:
                    worker.process.kill()
                    worker.process.wait()
            if self.redis is not None:
                self.redis.kill()

    def _wait_ready(self) -> None:
        deadline = time.time() + 90
        while time.time() < deadline:
            ready = sum(1 for w in self.workers if w.journal.exists() and '"ready"' in w.journal.read_text())
            if ready == len(self.workers):
                return
            for w in self.workers:
                if w.process.poll() is not None:
                    raise RuntimeError(f"worker {w.index} ended before it was ready:\n{w.log.read_text()[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError("workers not ready in 90 s")

    def _apply(self, step: Step) -> None:
        self.note("step", step=step.describe())
        if step.kind in ("sigterm", "sigkill"):
            self._signal(step)
        elif step.kind == "restart_redis" and self.redis is not None:
            self.note("redis_down")
            self.redis.kill()
            time.sleep(0.3)
            self.redis.start()
            self.note("redis_up")
        elif step.kind == "expire_lock" and self.redis is not None:
            import redis

            client = redis.Redis(*self.redis.address)
            gone = [client.delete(key) for key in client.scan_iter("vendorauth:*:lock")]
            self.note("locks_expired", count=len(gone))
        elif step.kind == "token_fault":
            rule, _ = TOKEN_FAULTS[step.fault]
            self.sandbox.add_fault(vendor="oauth2", route="token", count=step.count, **rule)
            self.note("token_fault", fault=step.fault, count=step.count)
        elif step.kind == "press_test":
            self._press_test()
        elif step.kind == "scan":
            thread = threading.Thread(target=self._scan, args=(step, len(self._scan_threads)), daemon=True)
            thread.start()
            self._scan_threads.append(thread)

    def _signal(self, step: Step) -> None:
        worker = self.workers[step.worker]
        if step.when == "refresh":  # mid-rotation: the moment a token request reaches the server
            before = self.sandbox.token_requests("oauth2")
            deadline = time.time() + 3
            while self.sandbox.token_requests("oauth2") == before and time.time() < deadline:
                time.sleep(0.005)
        if worker.process.poll() is not None:
            return
        if step.kind == "sigkill":
            worker.process.kill()
            self.note("killed", worker=worker.index, pid=worker.process.pid)
            self._replace(worker)
            return
        worker.process.send_signal(signal.SIGTERM)
        self.note("sigterm", worker=worker.index, pid=worker.process.pid)
        thread = threading.Thread(target=self._supervise, args=(worker,), daemon=True)
        thread.start()
        self._timers.append(thread)

    def _supervise(self, worker: Worker) -> None:
        """As Airflow's supervisor: SIGKILL 5 s after the SIGTERM; then the retry starts."""
        try:
            worker.process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            self.note("killed", worker=worker.index, pid=worker.process.pid, after="sigterm")
        worker.process.wait()
        self._replace(worker)

    def _replace(self, worker: Worker) -> None:
        worker.process.wait()
        if os.path.exists(self.stop_file):
            return
        with self._guard:
            self.workers[worker.index] = replacement = self._start_worker(worker.index, worker.style)
        del replacement

    def _press_test(self) -> None:
        """Test from a process that shares no disk with the workers (the api-server): its own file cache."""
        env = {**self.env, "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": str(self.folder / "api-server-tokens")}
        self.note("test_pressing")
        result = self._run_json(TEST_BUTTON, "test", env=env)
        self.tests_pressed.append(result)
        self.note("test_pressed", **result)

    def _run_json(self, code: str, name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env or self.env, capture_output=True,
                              text=True, timeout=180)
        (self.folder / f"{name}.log").write_text(done.stdout + done.stderr)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {"ok": False, "error": "no answer", "message": done.stderr[-2000:]}

    # ---- scans --------------------------------------------------------------------------------------------

    def _scan(self, step: Step, number: int) -> None:
        """One scan task, as ``step.fault`` says: ``plain`` (runs beside the workers), ``sigterm-mid-page``
        (told to stop once a few pages were served; Airflow's retry resumes it), ``clear-changed`` (told to
        stop, its process killed before the retry, then cleared and run again with another filter and
        another paging: the new run must start over)."""
        name = f"scan-{number}"
        output = self.folder / f"{name}.jsonl"
        since = 100 * (number % 3)
        env = {**self.env, "EXPLORER_OUTPUT": str(output), "EXPLORER_SINCE": str(since), "EXPLORER_PAGING": "page_number",
               "EXPLORER_LOGICAL_DATE": f"2026-01-{number + 1:02d}T00:00:00+00:00"}
        log = self.folder / f"{name}.log"
        if step.fault in ("sigterm-mid-page", "clear-changed"):
            process = self._scan_process(env, log)
            partial, deadline = Path(f"{output}.partial"), time.time() + 90
            while process.poll() is None and time.time() < deadline:  # a few pages written: mid-scan
                if partial.exists() and partial.read_bytes().count(b"\n") >= 150:
                    break
                time.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            self.note("scan_sigterm", scan=name)
            if step.fault == "clear-changed":
                time.sleep(0.8)  # the stop committed its checkpoint; the retry (1 s later) never starts
                process.kill()
                process.wait()
                self.note("scan_killed", scan=name)
                since += 50
                env |= {"EXPLORER_SINCE": str(since), "EXPLORER_PAGING": "offset"}
                process = self._scan_process(env, log)
            ended = process.wait(timeout=240)
        else:
            ended = self._scan_process(env, log).wait(timeout=240)
        said = log.read_text(errors="replace")
        state = "success" if "dag.test() ended: success" in said else "failed"
        ids = [json.loads(line)["id"] for line in output.read_text().splitlines()] if output.exists() else []
        expected = max(0, SCAN_ITEMS - since)
        self.scans.append({
            "name": f"{name} ({step.fault})", "state": state, "records": len(ids), "duplicates": len(ids) - len(set(ids)),
            "expected": expected, "exit": ended, "said": said[-3000:],
            "wrong": sorted(set(ids) - {f"ite-{i:06d}" for i in range(since, SCAN_ITEMS)})[:5],
            "named_shortfall": state == "failed" and ("records are in" in said or "chain is" in said),
        })
        self.note("scan_ended", scan=name, state=state, records=len(ids))

    def _scan_process(self, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            return subprocess.Popen([sys.executable, "-c", SCAN], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)

    def _finish(self) -> None:
        for thread in self._scan_threads:
            thread.join(timeout=300)
        self.stop_file.write_text("stop")
        for thread in self._timers:
            thread.join(timeout=KILL_GRACE_SECONDS + 5)
        deadline = time.time() + 30
        for worker in list(self.workers):
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                self.note("hung", worker=worker.index, pid=worker.process.pid)

    def _outcome(self, final: dict[str, Any]) -> Outcome:
        journal = []
        logs = []
        for path in sorted(self.folder.glob("worker-*.jsonl")):
            journal += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for path in sorted(self.folder.glob("*.log")):
            logs.append(path.read_text(errors="replace"))
        return Outcome(
            schedule=self.schedule,
            events=self.events,
            journal=journal,
            refresh_log=self.sandbox.refresh_log(),
            stats=self.sandbox.stats().get("oauth2", {}),
            final=final,
            tests_pressed=self.tests_pressed,
            logs="\n".join(logs),
            issued=self.sandbox.issued_tokens(),
            scans=self.scans,
            quota=next(iter(self.sandbox.quotas()), {}),
        )
