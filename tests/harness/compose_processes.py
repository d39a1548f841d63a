"""docker-compose.yaml, run as processes on this machine (no Docker engine runs here).

Each service becomes what its container would run, with exactly the environment the file gives it
(compose's ``${VAR:-default}`` interpolation and YAML anchors included), its own ``AIRFLOW_HOME`` (as each
container has its own filesystem; the file's volumes are shared folders linked into each home) and the
service host names mapped to 127.0.0.1: ``postgres`` is the machine's PostgreSQL with a database (and
the ``airflow`` role) of its own, ``redis`` a private ``redis-server`` on a free port (the file's database
numbers and keys untouched elsewhere), ``sandbox`` and ``airflow-apiserver`` run on free ports. Ports
that containers would not share (the api-server's, the scheduler's health check) are moved.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.harness.deployment import ROOT, free_port

AIRFLOW_BIN = Path(sys.executable).parent
IMAGE_HOME = "/opt/airflow"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's variable substitution: ``${VAR}``, ``${VAR:-default}``, ``$VAR`` and ``$$`` (a dollar)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1) or match.group(3), match.group(2)
        return variables.get(name) or (default if default is not None else "")

    return re.sub(r"\$\$|\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", one, value)


@dataclass
class ComposeStack:
    """The stack of one compose file, started as processes under ``root``; ``stop()`` leaves nothing."""

    compose_file: Path
    root: Path
    variables: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spec = yaml.safe_load(self.compose_file.read_text())
        self.services: dict[str, Any] = self.spec["services"]
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.database = f"airflow_compose_{secrets.token_hex(4)}"
        self.ports = {"redis": free_port(), "sandbox": free_port(), "api": free_port(), "health": free_port()}
        self.created_role = False

    # ---- the mapping of a container onto this machine ----------------------------------------------------

    def host_map(self, text: str) -> str:
        p = self.ports
        text = re.sub(r"@postgres(:5432)?/airflow\b", f"@127.0.0.1:5432/{self.database}", text)
        text = re.sub(r"redis://(:?@)?redis:6379", f"redis://\\g<1>127.0.0.1:{p['redis']}", text)
        text = text.replace("https://sandbox:8443", f"https://localhost:{p['sandbox']}")
        return text.replace("http://airflow-apiserver:8080", f"http://127.0.0.1:{p['api']}")

    def home_of(self, service: str) -> Path:
        home = self.root / "homes" / service
        if not home.exists():
            home.mkdir(parents=True)
            for volume in self.services[service].get("volumes", []):
                source, _, target = volume.partition(":")
                shared = (ROOT / source[2:]) if source.startswith("./") else self.root / "volumes" / source
                shared.mkdir(parents=True, exist_ok=True)
                link = home / Path(target).relative_to(IMAGE_HOME)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(shared, target_is_directory=True)
        return home

    def environment(self, service: str) -> dict[str, str]:
        home = str(self.home_of(service))
        given = {k: interpolate(str(v), self.variables) for k, v in (self.services[service].get("environment") or {}).items()}
        env = {k: self.host_map(v).replace(IMAGE_HOME, home) for k, v in given.items()}
        env |= {
            "PATH": f"{AIRFLOW_BIN}:/usr/bin:/bin",
            "HOME": home,
            "AIRFLOW_HOME": home,  # the image's AIRFLOW_HOME is /opt/airflow
            "AIRFLOW__API__PORT": str(self.ports["api"]),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports["health"]),
            "HOSTNAME": service,
        }
        return env

    def command(self, service: str) -> list[str]:
        spec = self.services[service]
        entrypoint = spec.get("entrypoint")
        command = spec.get("command")
        words = command if isinstance(command, list) else shlex.split(command or "")
        words = [self.host_map(interpolate(str(w), self.variables)).replace(IMAGE_HOME, str(self.home_of(service))) for w in words]
        if entrypoint:
            head = entrypoint if isinstance(entrypoint, list) else [entrypoint]
            return [shutil.which(head[0]) or head[0], *head[1:], *words]
        return [str(AIRFLOW_BIN / "airflow"), *words]  # the official image's entrypoint runs `airflow <command>`

    # ---- life cycle -----------------------------------------------------------------------------------

    def spawn(self, service: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{service}.log", "ab")
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[service] = process
        return process

    def start(self) -> ComposeStack:
        try:
            self._postgres()
            self.spawn("redis", ["redis-server", "--port", str(self.ports["redis"]), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(self.root)], dict(os.environ))
            sandbox = self.command("sandbox")
            sandbox[sandbox.index("--port") + 1] = str(self.ports["sandbox"])
            sandbox[sandbox.index("--host") + 1] = "127.0.0.1"
            self.spawn("sandbox", sandbox, {**os.environ, **self.environment("sandbox")})
            self._wait(lambda: httpx.get(f"https://localhost:{self.ports['sandbox']}/_admin/health", verify=False).status_code == 200, "sandbox")
            init = subprocess.run(self.command("airflow-init"), env=self.environment("airflow-init"),
                                  capture_output=True, text=True, timeout=600)
            (self.logs / "airflow-init.log").write_text(init.stdout + init.stderr)
            if init.returncode != 0:
                raise RuntimeError(f"airflow-init failed; see {self.logs / 'airflow-init.log'}")
            for service in AIRFLOW_SERVICES:
                self.spawn(service, self.command(service), self.environment(service))
            self._wait(self.api_healthy, "airflow-apiserver")  # the worker waits for it, as the file says
            self.spawn("airflow-worker", self.command("airflow-worker"), self.environment("airflow-worker"))
        except BaseException:
            self.stop()
            raise
        return self

    def api_healthy(self) -> bool:
        return httpx.get(f"{self.api}/api/v2/version", timeout=2).status_code == 200

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def _wait(self, ready: Any, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs / (name + '.log')}")
            try:
                if ready():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{what} was not ready in {timeout} s; logs in {self.logs}")

    def _postgres(self) -> None:
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = 'airflow'")
            if cursor.fetchone() is None:
                cursor.execute("CREATE ROLE airflow LOGIN PASSWORD 'airflow'")
                self.created_role = True
            cursor.execute(f"CREATE DATABASE {self.database} OWNER airflow")
        admin.close()

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            if self.created_role:
                cursor.execute("DROP ROLE IF EXISTS airflow")
        admin.close()

    def __enter__(self) -> ComposeStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
