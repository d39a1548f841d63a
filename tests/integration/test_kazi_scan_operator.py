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
