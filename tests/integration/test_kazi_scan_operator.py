"""KaziScanOperator against the sandbox: one hook (one connection read, one client) per try."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_vendorauth.sandbox.client import Sandbox

pytestmark = pytest.mark.integration


def test_a_polling_scan_uses_one_hook_and_reads_its_connection_once(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import BaseHook

    from airflow_vendorauth.hooks.kazi import KaziHook
    from airflow_vendorauth.operators.kazi_scan import KaziScanOperator

    vendor_sandbox.configure(scan_seconds=0.5)
    hooks: list[KaziHook] = []
    reads: list[str] = []
    original_init = KaziHook.__init__
    original_get = BaseHook.get_connection.__func__  # type: ignore[attr-defined]

    def counting_init(self: KaziHook, *args: Any, **kwargs: Any) -> None:
        hooks.append(self)
        original_init(self, *args, **kwargs)

    def counting_get(cls: type, conn_id: str) -> Any:
        reads.append(conn_id)
        return original_get(cls, conn_id)

    monkeypatch.setattr(KaziHook, "__init__", counting_init)
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(counting_get))
    op = KaziScanOperator(
        task_id="scan", scan_type="job", items=[{"id": f"job-{i}"} for i in range(30)], poll_interval=0.1
    )
    results = op.execute({})  # submit, poll, collect: all in one try
    assert len(results) == 30
    assert len(hooks) == 1
    assert reads == ["kazi_default"]
    assert vendor_sandbox.token_requests("kazi") == 1


class DictStore:
    """task_state_store's interface over a dict (what a retry of the same task instance sees)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


@pytest.mark.parametrize("partial_gone", [False, True], ids=["same-machine", "another-machine"])
def test_a_retried_collection_writes_every_result_exactly_once(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Any, partial_gone: bool
) -> None:
    """Issue 22 for KaziScanOperator's output: the first try dies while collecting (an HTML page after two
    result pages); the retry reconnects to the same scan and resumes the file, or starts it over when the
    partial file is not there (another worker)."""
    import json
    from pathlib import Path

    from airflow_vendorauth.operators.kazi_scan import KaziScanOperator

    vendor_sandbox.configure(scan_seconds=0.3, paging={"kazi": {"page_cap": 10}})
    vendor_sandbox.add_fault(vendor="kazi", route="/tagging/v2/job-scans/*/results", rate_html=1.0, after=2, count=1)
    out, store = tmp_path / "results.jsonl", DictStore()
    items = [{"id": f"job-{i}"} for i in range(60)]

    def attempt() -> Any:
        op = KaziScanOperator(task_id="scan", scan_type="job", items=items, output_path=str(out), poll_interval=0.1)
        return op.execute({"task_state_store": store})  # type: ignore[arg-type]

    with pytest.raises(Exception, match=r"HTML|not JSON"):
        attempt()
    if partial_gone:
        Path(str(out) + ".partial").unlink()
    result = attempt()
    ids = [json.loads(line)["jobId"] for line in out.read_text().splitlines()]
    assert ids == [item["id"] for item in items]  # every result once, in order
    assert result["records"] == 60 and result["expected_records"] == 60
    assert vendor_sandbox.stats()["kazi"]["api_requests"] >= 1


@pytest.mark.parametrize("fail_on_shortfall", [True, False])
def test_results_for_xcom_are_checked_against_the_announced_total(
    vendor_sandbox: Sandbox, sandbox_connections: dict, fail_on_shortfall: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 31, case 5: Kazi announces 100 results more than its pages hold (250 of 350). To XCom, as to a
    file, the task fails naming both numbers, or with fail_on_shortfall=False keeps the 250 with a warning;
    it never ends green in silence."""
    from airflow_vendorauth.exceptions import PaginationError
    from airflow_vendorauth.operators.kazi_scan import KaziScanOperator

    vendor_sandbox.configure(scan_seconds=0.3, paging={"kazi": {"total_lie": 100, "page_cap": 50}})
    op = KaziScanOperator(
        task_id="scan",
        scan_type="job",
        items=[{"id": f"job-{i}"} for i in range(250)],
        poll_interval=0.1,
        deferrable=False,
        fail_on_shortfall=fail_on_shortfall,
    )
    if fail_on_shortfall:
        with pytest.raises(PaginationError, match=r"announced 350 records but the pages held 250 \(100 missing\)"):
            op.execute({})
        return
    results = op.execute({})
    assert len(results) == len({r["jobId"] for r in results}) == 250
    assert "the API announced 350 records but the pages held 250 (100 missing)" in capsys.readouterr().out


def test_a_scan_s_output_url_with_a_password_is_written_but_not_returned(
    vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    """Issue 31, case 8, for KaziScanOperator: XCom (the metadata database, the UI) gets the path without
    the password; the results are written to the real one."""
    import fsspec

    from airflow_vendorauth.operators.kazi_scan import KaziScanOperator

    vendor_sandbox.configure(scan_seconds=0.3)
    op = KaziScanOperator(
        task_id="scan", scan_type="job", items=[{"id": f"job-{i}"} for i in range(30)], poll_interval=0.1,
        deferrable=False, output_path="memory://etl:kazi-test-password-77@kazi-results/job_scan.jsonl",
    )
    result = op.execute({})
    assert result["path"] == "memory://kazi-results/job_scan.jsonl" and result["records"] == 30
    assert "kazi-test-password-77" not in repr(result) + repr(op.outlets)
    assert fsspec.filesystem("memory").cat("/etl:kazi-test-password-77@kazi-results/job_scan.jsonl").count(b"\n") == 30
