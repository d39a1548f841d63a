"""Run VendorApiSensor's trigger as the triggerer does: serialised, rebuilt from its kwargs, run to its event."""

from __future__ import annotations

import asyncio
from typing import Any

import pendulum

from airflow_vendorauth.triggers.api import VendorApiTrigger


def run_trigger(conn_id: str, endpoint: str, json_path: str, expected: Any) -> tuple[dict[str, Any], list[Any]]:
    """(the kwargs the metadata database would store, the trigger's events)."""
    trigger = VendorApiTrigger(
        conn_id=conn_id,
        endpoint=endpoint,
        params={},
        check={"json_path": json_path, "expected": expected, "callable": None},
        poke_interval=0.2,
        deadline=pendulum.now("UTC").add(seconds=30).isoformat(),
    )
    _, kwargs = trigger.serialize()

    async def events() -> list[Any]:
        return [event async for event in VendorApiTrigger(**kwargs).run()]

    return kwargs, asyncio.run(events())
