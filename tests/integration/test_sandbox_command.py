"""The sandbox's command line as a user runs it: what it prints for workload identity and mutual TLS works
as printed (``python -m airflow_vendorauth.sandbox``, its output parsed, the hooks given exactly that)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from airflow_vendorauth.hooks.kazi import KaziHook
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.sandbox.state import SandboxCredentials

pytestmark = pytest.mark.integration


class Started:
    def __init__(self, exports: dict[str, str], comments: list[str], url: str) -> None:
        self.exports, self.comments, self.url = exports, comments, url


@pytest.fixture
def run_sandbox(tmp_path: Path) -> Iterator:
    processes: list[subprocess.Popen[str]] = []

    def start(*options: str) -> Started:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_vendorauth.sandbox", *options],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        processes.append(process)
        assert process.stdout is not None
        exports, comments = {}, []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, f"the sandbox ended before its SANDBOX_URL line: {comments}"
            if line.startswith("SANDBOX_URL="):
                return Started(exports, comments, line.removeprefix("SANDBOX_URL=").strip())
            if line.startswith("export "):
                name, _, value = shlex.split(line.removeprefix("export "))[0].partition("=")
                exports[name] = value
            else:
                comments.append(line.strip())
        raise AssertionError(f"no SANDBOX_URL line within 60 s: {comments}")

    yield start
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)  # it stops on SIGTERM, TLS clients still connected or not


def exported(monkeypatch: pytest.MonkeyPatch, started: Started) -> None:
    for name, value in started.exports.items():
        monkeypatch.setenv(name, value)


def test_the_sandbox_writes_the_workload_token_file_and_prints_what_to_export(
    run_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = run_sandbox("--workload-token-file", "tokens/azure-identity-token")
    token_file = tmp_path / "tokens" / "azure-identity-token"
    assert started.exports["AZURE_FEDERATED_TOKEN_FILE"] == str(token_file)
    assert token_file.stat().st_mode & 0o077 == 0, "a credential: owner-only"
    claims = jwt.decode(token_file.read_text(), options={"verify_signature": False})
    assert claims["iss"] == f"{started.url}/workload-issuer" and claims["exp"] - claims["iat"] == 3600
    exported(monkeypatch, started)
    # the printed connection, as the example DAG kazi_workload_identity uses it
    assert KaziHook("kazi_workload_identity").get_token(force_refresh=True).seconds_left() > 0
    # the README's connection: no client id, tenant or token URL; all from the printed AZURE_* variables
    c = SandboxCredentials()
    monkeypatch.setenv(
        "AIRFLOW_CONN_KAZI_AKS",
        f'{{"conn_type": "kazi", "host": "{started.url}/kazi", "extra": {{"client_auth": "federated", '
        f'"resource": "{c.kazi_resource}", "subscription_api_key": "{c.kazi_subscription_key}"}}}}',
    )
    hook = KaziHook("kazi_aks")
    assert hook.get_token(force_refresh=True).seconds_left() > 0
    assert hook.request("GET", "/tagging/v2/expectations", params={"pageSize": 1}).json()["pagination"]
    assert httpx.get(f"{started.url}/_admin/stats").json()["kazi"]["token_requests"] == 2


def test_the_workload_token_file_is_rewritten_before_it_expires(
    run_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = run_sandbox("--workload-token-file", "azure-identity-token", "--workload-token-lifetime", "12")
    token_file = tmp_path / "azure-identity-token"
    first = token_file.read_text()
    deadline = time.monotonic() + 15
    while token_file.read_text() == first and time.monotonic() < deadline:
        time.sleep(0.2)
    second = token_file.read_text()
    assert second != first, "the token file was not rewritten within 15 s of a 12 s token"
    first_exp, second_exp = (jwt.decode(t, options={"verify_signature": False})["exp"] for t in (first, second))
    assert second_exp > first_exp
    exported(monkeypatch, started)
    assert KaziHook("kazi_workload_identity").get_token(force_refresh=True).seconds_left() > 0


def test_in_mutual_tls_mode_the_sandbox_prints_oauth2_mtls_and_it_works_as_printed(
    run_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = run_sandbox("--mtls-dir", "pki")
    assert started.url.startswith("https://")
    assert "AIRFLOW_CONN_OAUTH2_MTLS" in started.exports
    exported(monkeypatch, started)
    hook = OAuth2Hook("oauth2_mtls")
    token = hook.get_token()
    assert "cnf" in jwt.decode(token.access_token, options={"verify_signature": False}), "a certificate-bound token"
    assert hook.request("GET", "/items", params={"per_page": 1}).json()["items"]
