"""A real Airflow deployment as processes on this machine: the harness of the crash and cluster tests,
and of `make cluster-demo`.

It starts, from this virtualenv, `airflow api-server`, `scheduler`, `dag-processor`, `triggerer` and, for
the CeleryExecutor, `airflow celery worker` processes with distinct hostnames. Every process runs in
its own process group and is stopped by its own PID (also when a step fails); every log goes under one
folder. Airflow is the distributed engine here: nothing home-made stands beside it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    """One Airflow deployment. Use as a context manager; ``stop()`` leaves no process behind."""

    root: Path
    executor: str = "LocalExecutor"
    sql_alchemy_conn: str | None = None
    celery_broker: str | None = None
    workers: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    dag_files: Iterable[Path] = ()
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.home = self.root / "airflow_home"
        self.home.mkdir(exist_ok=True)
        self.dags = self.root / "dags"
        self.dags.mkdir(exist_ok=True)
        for path in self.dag_files:
            link = self.dags / path.name
            if not link.exists():
                link.symlink_to(path)
        self.sql_alchemy_conn = self.sql_alchemy_conn or f"sqlite:///{self.home / 'airflow.db'}"
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": str(self.sql_alchemy_conn),
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "tasks"),
                "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": str(self.root / "token-cache"),
                # every worker names itself (VENDORAUTH_WORKER_NAME) though all run on this machine
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.harness.cluster_hostname.hostname",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            }
        )
        if self.executor == "CeleryExecutor":
            env["AIRFLOW__CELERY__BROKER_URL"] = str(self.celery_broker)
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + str(self.sql_alchemy_conn)
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "4"
        env.update(self.extra_env)
        return env

    # ---- processes -------------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run an `airflow` command to completion; raise with its log on failure."""
        result = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")
        process = subprocess.Popen(
            [AIRFLOW, *args], env=env or self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def start(self) -> Deployment:
        try:
            self.cli("db", "migrate")
            self.cli("dags", "reserialize")
            self.spawn("api-server", "api-server", "--port", str(self.api_port), "--host", "127.0.0.1")
            self.spawn("scheduler", "scheduler")
            self.spawn("dag-processor", "dag-processor")
            self.spawn("triggerer", "triggerer")
            for n in range(1, self.workers + 1):
                self.start_worker(n)
            self._wait_api()
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, n: int) -> subprocess.Popen[bytes]:
        env = {**self.env, "VENDORAUTH_WORKER_NAME": f"worker{n}"}
        queue = env.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default")
        return self.spawn(
            f"worker{n}", "celery", "worker", "--celery-hostname", f"worker{n}@%h", "--concurrency", "4",
            "--queues", queue, env=env,
        )

    def _wait_api(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs / (name + '.log')}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the api-server did not answer in {timeout} s; see {self.logs}")

    def process_tree(self, name: str) -> list[Any]:
        """The psutil processes below ``name`` (its children, theirs, ...)."""
        import psutil

        try:
            return list(psutil.Process(self.processes[name].pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def kill_tree(self, name: str) -> None:
        """SIGKILL a process and every process below it, whatever their process groups: a Celery worker's
        task processes live in groups of their own, and a lost host takes them along."""
        import psutil

        tree = self.process_tree(name)
        self.kill(name)
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=30)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one process and all its children (its process group)."""
        process = self.processes[name]
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- DAG runs ---------------------------------------------------------------------------------------

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> str:
        self.cli("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf or {}))
        return run_id

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        from sqlalchemy import create_engine, text

        engine = create_engine(str(self.sql_alchemy_conn))
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(sql), params)]
        finally:
            engine.dispose()

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id)
        return rows[0][0] if rows else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            for name, process in self.processes.items():
                if process.poll() is not None and not name.startswith("worker"):
                    raise RuntimeError(f"{name} died ({process.returncode}); see {self.logs / (name + '.log')}")
            time.sleep(1)
        raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout} s; logs in {self.logs}")

    def task_tries(self, dag_id: str, run_id: str) -> list[tuple[str, int, int, str, str]]:
        """(task_id, map_index, try_number, state, hostname) of every try, past ones included."""
        sql = "SELECT task_id, map_index, try_number, state, hostname FROM {table} WHERE dag_id = :d AND run_id = :r"
        rows = self.query(sql.format(table="task_instance"), d=dag_id, r=run_id)
        rows += self.query(sql.format(table="task_instance_history"), d=dag_id, r=run_id)
        return [tuple(r) for r in rows]  # type: ignore[misc]
