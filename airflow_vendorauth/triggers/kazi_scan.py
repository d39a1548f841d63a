"""KaziScanTrigger: waits for a Kazi scan in the triggerer, with the async hook.

Its kwargs are serialised into the metadata database, so they hold the connection id and the scan
id, never a token or a secret; the trigger reads the connection itself with the async API.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_vendorauth.vendors.kazi import scan_outcome

#: The first poll waits a random moment up to this long (or the poll interval, if shorter).
FIRST_POLL_SPREAD_SECONDS = 2.0


class KaziScanTrigger(BaseTrigger):
    """Poll ``status_endpoint`` until the scan leaves Queued/Running, or until ``deadline`` (ISO)."""

    def __init__(
        self, *, conn_id: str, scan_id: str, status_endpoint: str, poll_interval: float, deadline: str
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.scan_id = scan_id
        self.status_endpoint = status_endpoint
        self.poll_interval = poll_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__name__}",
            {
                "conn_id": self.conn_id,
                "scan_id": self.scan_id,
                "status_endpoint": self.status_endpoint,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_vendorauth.hooks.shared_hooks import shared_hook

        deadline = datetime.fromisoformat(self.deadline)
        # A thousand scans deferred together would poll in lock step: spread them over the interval.
        await asyncio.sleep(random.uniform(0, min(self.poll_interval, FIRST_POLL_SPREAD_SECONDS)))
        async with shared_hook(self.conn_id) as hook:
            while True:
                try:
                    status = hook.json_body(await hook.arequest("GET", self.status_endpoint), "status")
                except Exception as error:  # noqa: BLE001 - reported to the task, which decides
                    yield TriggerEvent({"status": "error", "scan_id": self.scan_id, "message": str(error)})
                    return
                outcome = scan_outcome(str(status))
                if outcome == "succeeded":
                    yield TriggerEvent({"status": "success", "scan_id": self.scan_id, "scan_status": status})
                    return
                if outcome == "failed":
                    message = f"Kazi scan {self.scan_id} ended with status {status!r}"
                    yield TriggerEvent({"status": "error", "scan_id": self.scan_id, "message": message})
                    return
                if datetime.now(timezone.utc) >= deadline:
                    message = f"Kazi scan {self.scan_id} still {status} at the deadline {self.deadline}"
                    yield TriggerEvent({"status": "error", "scan_id": self.scan_id, "message": message})
                    return
                await asyncio.sleep(self.poll_interval * random.uniform(0.9, 1.1))
