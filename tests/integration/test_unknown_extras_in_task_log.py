"""Unknown extras through real Airflow (dag.test() against the sandbox): the task log names them with the
closest known names, once per process and connection; oauth2 with ``grant`` instead of ``grant_type``
fails its task before any token request instead of running client credentials as the app."""

from __future__ import annotations

import json

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.conftest import dagbag

pytestmark = pytest.mark.integration


def run(dag_id: str, conn: dict, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def, type-arg]
    import os

    monkeypatch.setenv("AIRFLOW_CONN_MISSPELT", json.dumps(conn))
    folder = os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "misspelt_extras.py")
    bag = dagbag(dag_folder=folder)
    assert bag.import_errors == {}, bag.import_errors
    return bag.get_dag(dag_id).test()


def test_two_tasks_in_one_process_log_the_unknown_extras_once(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    conn = json.loads(sandbox_connections["AIRFLOW_CONN_CLAZAR_DEFAULT"])
    conn["extra"] |= {"timout": 5, "max_retry": 2}
    dag_run = run("misspelt_clazar", conn, monkeypatch)
    assert dag_run.state == "success"
    out, err = capfd.readouterr()
    said = [line for line in (out + err).splitlines() if "do not know are ignored" in line]
    assert len(said) == 1, said
    assert "max_retry (did you mean max_retries?)" in said[0] and "timout (did you mean timeout?)" in said[0]


def test_oauth2_grant_instead_of_grant_type_fails_the_task_before_any_token_request(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    conn = json.loads(sandbox_connections["AIRFLOW_CONN_OAUTH2_DEFAULT"])
    del conn["extra"]["grant_type"]
    creds = vendor_sandbox.credentials
    conn["extra"] |= {"grant": "password", "username": creds.oauth2_username, "user_password": creds.oauth2_password}
    dag_run = run("misspelt_oauth2", conn, monkeypatch)
    assert dag_run.state == "failed"
    out, err = capfd.readouterr()
    assert "field 'grant' is not an extra of OAuth 2.0 connections; did you mean grant_type" in out + err
    assert vendor_sandbox.token_requests("oauth2") == 0


def test_oauth2_dpop_spelt_as_the_rfc_does_fails_the_task_before_any_token_request(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    """``"DPoP": true`` used to run with bearer tokens (a warning only); a misspelt security field is refused."""
    conn = json.loads(sandbox_connections["AIRFLOW_CONN_OAUTH2_DPOP"])
    del conn["extra"]["dpop"]
    conn["extra"]["DPoP"] = True
    dag_run = run("misspelt_oauth2", conn, monkeypatch)
    assert dag_run.state == "failed"
    out, err = capfd.readouterr()
    assert "Connection 'misspelt': field 'DPoP' is not an extra of OAuth 2.0 connections; did you mean dpop" in out + err
    assert "rename the extra DPoP to dpop" in out + err
    assert vendor_sandbox.token_requests("oauth2") == 0
