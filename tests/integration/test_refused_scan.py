"""A scan whose credentials are refused (issue 32, case 11): a wrong client secret fails the task before any
page, leaves no empty ``.partial`` behind, and its log says nothing was fetched and points at the
credential error, never that "a retry resumes" (a retry fails alike until the connection is fixed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_vendorauth.exceptions import TokenRequestError
from airflow_vendorauth.sandbox.client import Sandbox

pytestmark = pytest.mark.integration


def test_a_wrong_secret_leaves_no_partial_output_and_says_nothing_was_fetched(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from airflow_vendorauth.operators.api import VendorApiOperator

    conn = json.loads(sandbox_connections["AIRFLOW_CONN_KAZI_DEFAULT"])
    conn["password"] = "not-the-secret-of-this-app"
    monkeypatch.setenv("AIRFLOW_CONN_KAZI_DEFAULT", json.dumps(conn))
    output = tmp_path / "kazi.jsonl"
    operator = VendorApiOperator(
        task_id="scan", conn_id="kazi_default", endpoint="/tagging/v2/expectations", output_path=str(output)
    )
    with pytest.raises(TokenRequestError) as refused:
        operator.execute({})
    said = capsys.readouterr().out
    assert not refused.value.retryable
    assert list(tmp_path.iterdir()) == []  # no empty kazi.jsonl.partial
    assert (
        "/tagging/v2/expectations: nothing was fetched and no partial output is left: the token request for "
        "connection 'kazi_default' failed (the error below names the field to fix); a retry fails alike until "
        "the connection is fixed"
    ) in said, said[-3000:]
    assert "a retry resumes" not in said
    assert vendor_sandbox.api_requests("kazi") == 0
