"""KaziScanTrigger (triggers/kazi_scan.py) against the sandbox: ids only in its serialised kwargs, and
the event it fires for a scan that succeeds, fails or outlives its deadline."""

from __future__ import annotations

import json

import pendulum
import pytest

from airflow_vendorauth.hooks.kazi import KaziHook
from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.triggers.kazi_scan import KaziScanTrigger

pytestmark = pytest.mark.integration


def submit(simulate_failure: bool = False) -> str:
    body = {"jobs": [{"id": f"job-{i}"} for i in range(3)], "simulateFailure": simulate_failure}
    hook = KaziHook("kazi_default")
    return str(hook.json_body(hook.request("POST", "/tagging/v2/job-scans", json=body), "id"))


def trigger_for(scan_id: str, seconds: float = 60) -> KaziScanTrigger:
    return KaziScanTrigger(
        conn_id="kazi_default",
        scan_id=scan_id,
        status_endpoint=f"/tagging/v2/job-scans/{scan_id}",
        poll_interval=0.1,
        deadline=pendulum.now("UTC").add(seconds=seconds).isoformat(),
    )


async def first_event(trigger: KaziScanTrigger) -> dict:
    async for event in trigger.run():
        return event.payload  # type: ignore[no-any-return]
    raise AssertionError("the trigger ended without an event")


def test_its_kwargs_hold_ids_never_a_secret(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    classpath, kwargs = trigger_for("job-scan-1").serialize()
    assert classpath == "airflow_vendorauth.triggers.kazi_scan.KaziScanTrigger"
    assert set(kwargs) == {"conn_id", "scan_id", "status_endpoint", "poll_interval", "deadline"}
    shown = json.dumps(kwargs)
    for secret in vendor_sandbox.credentials.secrets():
        assert secret not in shown
    assert KaziScanTrigger(**kwargs).serialize() == (classpath, kwargs)  # the triggerer rebuilds it


async def test_a_scan_that_succeeds_fires_success(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    vendor_sandbox.configure(scan_seconds=0.5)
    event = await first_event(trigger_for(submit()))
    assert (event["status"], event["scan_status"]) == ("success", "Succeeded")


async def test_a_scan_that_fails_fires_an_error_naming_its_status(
    vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    vendor_sandbox.configure(scan_seconds=0.5)
    scan_id = submit(simulate_failure=True)
    event = await first_event(trigger_for(scan_id))
    assert event["status"] == "error" and "'Failed'" in event["message"] and scan_id in event["message"]


async def test_a_scan_past_its_deadline_fires_an_error(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    vendor_sandbox.configure(scan_seconds=60)
    event = await first_event(trigger_for(submit(), seconds=0.3))
    assert event["status"] == "error" and "deadline" in event["message"]
