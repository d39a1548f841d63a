"""An output path with a password, through dag.test() (issue 31, case 8): the Asset Airflow stores for the
operator's outlet, the asset event of the run, the task's XCom and its log carry no password; the records
are written to the real path. The unit tests (every kind of secret in a URL) are tests/unit/test_output_secrets.py's."""

from __future__ import annotations

import json

import fsspec
import pendulum
import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.conftest import load_test_dag
from tests.integration.test_sigterm_commit import query

pytestmark = pytest.mark.integration

PASSWORD = "vendorauth-test-password-5150"


def test_an_output_path_s_password_reaches_no_asset_event_xcom_or_log(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    output = f"memory://etl:{PASSWORD}@vendorauth-secret-output/{{{{ run_id }}}}/jobs.jsonl"
    dag = load_test_dag("secret_output", monkeypatch, SECRET_OUTPUT=output)
    run = dag.test(logical_date=pendulum.now("UTC"))
    said = capfd.readouterr()
    assert run.state == "success", said.out[-6000:]
    written = f"/etl:{PASSWORD}@vendorauth-secret-output/{run.run_id}/jobs.jsonl"
    assert fsspec.filesystem("memory").cat(written).count(b"\n") == 120  # the real path is the one written

    (asset,) = query("SELECT name, uri FROM asset WHERE name LIKE 'vendorauth:memory://%secret-output%'")
    assert asset == ("vendorauth:memory://vendorauth-secret-output/*/jobs.jsonl", "memory://vendorauth-secret-output/*/jobs.jsonl")
    (extra,) = query(
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = :n AND e.source_run_id = :r",
        n=asset[0],
        r=run.run_id,
    )
    event = json.loads(extra[0]) if isinstance(extra[0], str) else extra[0]
    assert event["path"] == f"memory://vendorauth-secret-output/{run.run_id}/jobs.jsonl" and event["records"] == 120
    (xcom,) = query(
        "SELECT value FROM xcom WHERE dag_id = 'secret_output' AND task_id = 'jobs' AND run_id = :r AND key = 'return_value'",
        r=run.run_id,
    )
    assert PASSWORD not in str(asset) + str(extra) + str(xcom)
    assert f"memory://vendorauth-secret-output/{run.run_id}/jobs.jsonl" in str(xcom)
    assert "120 records" in said.out and PASSWORD not in said.out + said.err
