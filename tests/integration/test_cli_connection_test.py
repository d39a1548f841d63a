"""`airflow connections test` as a user types it (no ``--verbose``): what Test found reaches the terminal.

Airflow's CLI prints only "Connection success!" on success and silences logging for the command, so the
hook's message (a misspelt extra, a refresh token it did not spend) is printed by the hook itself
(airflow_vendorauth/hooks/test_report.py). Each case runs the real CLI in a process of its own, with
the connection in an ``AIRFLOW_CONN_*`` variable, against the sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection, sandbox_connections

pytestmark = pytest.mark.integration

AIRFLOW = Path(sys.executable).parent / "airflow"


def cli_test(conn_id: str, conn: dict[str, Any], home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn),
    }
    return subprocess.run(
        [str(AIRFLOW), "connections", "test", conn_id], env=env, capture_output=True, text=True, timeout=240
    )


def between_testing_and_verdict(stdout: str) -> str:
    """What was printed after the CLI's "Testing..." and before its "Connection success!"."""
    assert "Testing..." in stdout and "Connection success!" in stdout, stdout
    return stdout.split("Testing...", 1)[1].split("Connection success!", 1)[0].strip()


def test_a_misspelt_extra_is_named_on_the_terminal_of_a_successful_test(vendor_sandbox: Sandbox, tmp_path: Path) -> None:
    vendor_sandbox.reset()
    conn = sandbox_connections(vendor_sandbox.url)["keyavi_default"]
    conn["extra"]["timout"] = 60  # a misspelt timeout: ignored, so the user must hear of it
    done = cli_test("keyavi_default", conn, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    said = between_testing_and_verdict(done.stdout)
    assert "Keyavi token obtained, valid for" in said, done.stdout
    assert "timout (did you mean timeout?)" in said, done.stdout
    assert vendor_sandbox.token_requests("keyavi") == 1


def test_a_refresh_token_test_says_on_the_terminal_that_it_spent_nothing(vendor_sandbox: Sandbox, tmp_path: Path) -> None:
    vendor_sandbox.reset()
    conn = oauth2_connection(vendor_sandbox.url, grant_type="refresh_token", token_cache="memory")
    conn["extra"]["refresh_token"] = vendor_sandbox.seed_refresh_token(conn["login"])
    done = cli_test("oauth2_default", conn, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    said = between_testing_and_verdict(done.stdout)
    assert "not spent" in said, done.stdout
    assert vendor_sandbox.stats()["oauth2"].get("refresh_reuse", 0) == 0


def test_a_failure_is_printed_once_by_the_cli_itself(vendor_sandbox: Sandbox, tmp_path: Path) -> None:
    conn = sandbox_connections(vendor_sandbox.url)["clazar_default"]
    conn["password"] = "not-the-secret"
    done = cli_test("clazar_default", conn, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Connection failed!" in done.stdout, done.stdout
    assert done.stdout.count("Clazar refused the credentials") == 1, done.stdout
    assert "not-the-secret" not in done.stdout + done.stderr
