"""Start a sandbox in its own process and drive it: the handle tests, the demo and benchmarks use."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from airflow_vendorauth.sandbox.__main__ import READY_PREFIX
from airflow_vendorauth.sandbox.connections import sandbox_environment
from airflow_vendorauth.sandbox.state import SandboxCredentials


class Sandbox:
    """A running sandbox process: its URL, its connections, its admin endpoints."""

    def __init__(self, *args: str, log_path: Path | None = None, startup_timeout: float = 30.0) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self.credentials = SandboxCredentials()
        self._admin = httpx.Client(timeout=10.0)

    def start(self) -> Sandbox:
        log = open(self.log_path, "a") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow_vendorauth.sandbox", *self.args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + self.startup_timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                self.url = line[len(READY_PREFIX) :].strip()
                break
        if not self.url:
            self.stop()
            raise RuntimeError("the sandbox did not start; see its log")
        if self.url.startswith("https://"):  # its own self-signed certificate (--tls-hostname)
            self._admin.close()
            self._admin = httpx.Client(timeout=10.0, verify=False)
        # Keep draining stdout so the child never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self._wait_healthy(deadline)
        return self

    def _wait_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if self._admin.get(f"{self.url}/_admin/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the sandbox did not become healthy")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._admin.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- admin ----------------------------------------------------------------------------------

    def _post(self, path: str, body: Any = None, **params: Any) -> Any:
        response = self._admin.post(f"{self.url}/_admin/{path}", json=body, params=params)
        response.raise_for_status()
        return response.json()

    def environment(self, token_cache: str = "memory") -> dict[str, str]:
        return sandbox_environment(self.url, token_cache=token_cache)

    def stats(self) -> dict[str, dict[str, int]]:
        response = self._admin.get(f"{self.url}/_admin/stats")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def token_requests(self, vendor: str) -> int:
        return self.stats().get(vendor, {}).get("token_requests", 0)

    def api_requests(self, vendor: str) -> int:
        return self.stats().get(vendor, {}).get("api_requests", 0)

    def issued_tokens(self) -> list[str]:
        response = self._admin.get(f"{self.url}/_admin/issued_tokens")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._post("reset")

    def add_fault(self, **rule: Any) -> None:
        self._post("faults", rule)

    def faults(self) -> list[dict[str, Any]]:
        """The fault rules with their counters (``served``, ``in_flight``, ``peak_in_flight``)."""
        response = self._admin.get(f"{self.url}/_admin/faults")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def add_quota(self, **rule: Any) -> None:
        """A per-credential quota (``vendor``, ``rates``, ``max_in_flight``, ``headers``...: see
        :mod:`airflow_vendorauth.sandbox.quotas`)."""
        self._post("quotas", rule)

    def quotas(self) -> list[dict[str, Any]]:
        """The quota rules with their counters (``served``, ``refused_rate``, ``refused_at_once``, ``peak_in_flight``)."""
        response = self._admin.get(f"{self.url}/_admin/quotas")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        self._admin.delete(f"{self.url}/_admin/faults").raise_for_status()

    def revoke(self, vendor: str | None = None) -> int:
        params = {"vendor": vendor} if vendor else {}
        return int(self._post("revoke", **params)["revoked"])

    def rotate_secret(self, vendor: str) -> None:
        """Rotate the vendor's client secret (Kayzen: the API secret): the connections' one is refused."""
        self._post("rotate_secret", vendor=vendor)

    def seed_refresh_token(self, client_id: str, scope: str = "items.read") -> str:
        """A refresh token of the generic authorization server, as a user would get once, interactively."""
        return str(self._post("oauth2/refresh_token", client_id=client_id, scope=scope)["refresh_token"])

    def refresh_log(self) -> list[dict[str, Any]]:
        """Every refresh token presented to the generic server, in order, with its outcome."""
        response = self._admin.get(f"{self.url}/_admin/oauth2/refresh_log")
        response.raise_for_status()
        return list(response.json())

    def workload_token(self, **claims: Any) -> str:
        """A projected service account token of the sandbox's workload issuer (``subject``, ``audience``,
        ``lifetime``, ``not_before_in``, ``now``), as the kubelet writes it into a pod."""
        return str(self._post("workload_identity/token", claims)["token"])

    def malformed(self, vendor: str, mode: str, count: int = 1) -> None:
        self._post("malformed", {"vendor": vendor, "mode": mode, "count": count})

    def configure(self, **settings: Any) -> dict[str, Any]:
        return self._post("config", settings)  # type: ignore[no-any-return]
