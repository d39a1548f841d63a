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
