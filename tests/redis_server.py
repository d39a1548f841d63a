"""A redis-server of a test's own, on a free port of 127.0.0.1: killed, restarted (empty), made busy.

The machine's Redis on 6379 is shared by everyone; faults are injected only into a server a test
started itself. Nothing is persisted (``--save ''``, no AOF): a restart comes back empty, as a Redis
without persistence (or a failover to an empty replica) does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType

from tests.services import missing_service, redis_answers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``with RedisServer() as server: server.url ...; server.kill(); server.start()``."""

    def __init__(self, *, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.directory = tempfile.mkdtemp(prefix="vendorauth-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_service("no redis-server binary on PATH (apt-get install redis-server)")
        args = [str(binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.directory, "--busy-reply-threshold", "100"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._answers():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def _answers(self) -> bool:
        if self.password is None:
            return redis_answers(self.address)
        try:
            with socket.create_connection(self.address, timeout=1):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; every key and lock is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)
