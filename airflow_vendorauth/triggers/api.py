"""VendorApiTrigger: the deferred wait of VendorApiSensor, polling in the triggerer with the async hook.

Its kwargs (serialised into the metadata database) hold the connection id, the request and the check,
never a token; the trigger reads the connection with the async API. A thousand of them share one token
per credential, one hook per connection and one pooled async client (see the single flight of the token provider).
A quota spent until a known time (``QuotaExhausted``) is waited out here, where it costs no worker slot,
unless it resets after the sensor's deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_vendorauth.exceptions import QuotaExhausted
from airflow_vendorauth.sensors.check import AnswerCheck


class VendorApiTrigger(BaseTrigger):
    """Poll ``endpoint`` every ``poke_interval`` seconds until ``check`` passes or ``deadline`` (ISO) passes."""

    def __init__(
        self,
        *,
        conn_id: str,
        endpoint: str,
        params: dict[str, Any],
        check: dict[str, Any],
        poke_interval: float,
        deadline: str,
    ) -> None:
        super().__init__()
        self.conn_id, self.endpoint, self.params = conn_id, endpoint, params
        self.check, self.poke_interval, self.deadline = check, poke_interval, deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__name__}",
            {
                "conn_id": self.conn_id,
                "endpoint": self.endpoint,
                "params": self.params,
                "check": self.check,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_vendorauth.hooks.shared_hooks import shared_hook

        check = AnswerCheck(**self.check)
        deadline = datetime.fromisoformat(self.deadline)
        pokes = 0
        async with shared_hook(self.conn_id) as hook:
            while True:
                pokes += 1
                try:
                    body = hook.json_body(await hook.arequest("GET", self.endpoint, params=self.params))
                except QuotaExhausted as spent:
                    # the credential's quota is spent until a known time: deferred, the wait costs no worker slot
                    resets = datetime.fromtimestamp(spent.resets_at, timezone.utc)
                    if resets >= deadline:
                        message = f"{self.endpoint}: {spent}; that is past the sensor's deadline {self.deadline}"
                        yield TriggerEvent({"status": "timeout", "message": message, "pokes": pokes})
                        return
                    self.log.info("%s: quota %r spent until %s: waiting in the triggerer", self.endpoint, spent.quota, resets)
                    await asyncio.sleep(max(0.0, spent.resets_at - time.time()))
                    continue
                except Exception as error:  # noqa: BLE001 - reported to the task, which decides
                    yield TriggerEvent({"status": "error", "message": str(error), "pokes": pokes})
                    return
                if check.passes(body):
                    yield TriggerEvent({"status": "success", "pokes": pokes})
                    return
                if datetime.now(timezone.utc) >= deadline:
                    message = f"{self.endpoint} did not satisfy {check.describe()} by {self.deadline}"
                    yield TriggerEvent({"status": "timeout", "message": message, "pokes": pokes})
                    return
                # jittered, so a thousand waits deferred together do not poke in lock step
                await asyncio.sleep(self.poke_interval * random.uniform(0.9, 1.1))
