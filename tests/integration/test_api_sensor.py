"""VendorApiSensor (sensors/api.py) through dag.test(): for every vendor, a deferred wait (the trigger in
the triggerer, triggers/api.py) and a poking one, each kept waiting until the sandbox fills its list."""

from __future__ import annotations

import threading

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.data import DATASETS
from tests.integration.conftest import load_test_dag

pytestmark = pytest.mark.integration


def test_every_vendor_is_waited_for_deferred_and_poking(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor_sandbox.configure(sizes={name: 0 for name in DATASETS})  # nothing there yet
    refill = threading.Timer(4.0, lambda: vendor_sandbox.configure(sizes={n: v[1] for n, v in DATASETS.items()}))
    refill.start()
    try:
        run = load_test_dag("api_sensor", monkeypatch).test()
    finally:
        refill.cancel()
    assert run.state == "success"
    tries = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert set(tries.values()) == {"success"} and len(tries) == 11
    stats = vendor_sandbox.stats()
    assert stats["kazi"]["api_requests"] > 2  # the first (deferred) wait polled an empty list, then a full one
    for vendor in ("kazi", "keyavi", "kayzen", "smartrecruiters", "clazar", "oauth2"):
        assert stats[vendor]["token_requests"] == 1, vendor


def test_a_callable_check_cannot_be_deferred() -> None:
    from airflow_vendorauth.sensors.api import VendorApiSensor

    with pytest.raises(ValueError, match="dotted path"):
        VendorApiSensor(task_id="s", conn_id="c", endpoint="/e", response_check=lambda body: True, deferrable=True)
    with pytest.raises(ValueError, match="exactly one"):
        VendorApiSensor(task_id="s", conn_id="c", endpoint="/e")
