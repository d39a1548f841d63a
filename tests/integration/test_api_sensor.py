"""VendorApiSensor (sensors/api.py) through dag.test(): for every vendor, a deferred wait (the trigger in
the triggerer, triggers/api.py) and a poking one, each kept waiting until the sandbox fills its list."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.data import DATASETS
from tests.integration.conftest import load_test_dag

pytestmark = pytest.mark.integration


def test_every_vendor_is_waited_for_deferred_and_poking(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor_sandbox.configure(sizes={name: 0 for name in DATASETS})  # nothing there yet
    stop = threading.Event()

    def refill_once_the_trigger_has_polled() -> None:
        # Not a timer: on a busy machine dag.test() can take longer than any fixed delay to reach the first
        # sensor, which would then find the list already full. Refill after the deferred Kazi wait has poked
        # once in execute() and once more from the triggerer, both answered with an empty list.
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            if vendor_sandbox.api_requests("kazi") >= 2:
                break
            stop.wait(0.1)
        vendor_sandbox.configure(sizes={n: v[1] for n, v in DATASETS.items()})

    refill = threading.Thread(target=refill_once_the_trigger_has_polled, daemon=True)
    refill.start()
    try:
        run = load_test_dag("api_sensor", monkeypatch).test()
    finally:
        stop.set()
        refill.join()
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
