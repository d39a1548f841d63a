"""A deferred sensor whose credential's quota is spent waits it out in the triggerer (no worker slot), or
ends naming the quota when it resets after the sensor's deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_vendorauth.exceptions import QuotaExhausted
from airflow_vendorauth.triggers.api import VendorApiTrigger


class SpentOnce:
    """A hook whose first call finds the quota spent for ``seconds``, then answers ``{"status": "done"}``."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, 0

    async def arequest(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, str]:
        self.calls += 1
        if self.calls == 1:
            raise QuotaExhausted("quota '2/day' spent", vendor="Test", conn_id="c", quota="2/day",
                                 resets_at=time.time() + self.seconds)
        return {"status": "done"}

    def json_body(self, response: Any) -> Any:
        return response


def events(hook: SpentOnce, deadline_in: float, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    @asynccontextmanager
    async def shared_hook(conn_id: str) -> AsyncIterator[SpentOnce]:
        yield hook

    monkeypatch.setattr("airflow_vendorauth.hooks.shared_hooks.shared_hook", shared_hook)
    deadline = (datetime.now(timezone.utc) + timedelta(seconds=deadline_in)).isoformat()
    trigger = VendorApiTrigger(conn_id="c", endpoint="/r", params={}, check={"json_path": "status", "expected": "done"},
                               poke_interval=0.01, deadline=deadline)

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_a_deferred_wait_waits_out_a_spent_quota_in_the_triggerer(monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    assert events(SpentOnce(0.5), 60, monkeypatch) == [{"status": "success", "pokes": 2}]
    assert 0.4 < time.monotonic() - started < 5


def test_a_quota_that_resets_after_the_deadline_ends_the_wait_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    [event] = events(SpentOnce(3600), 60, monkeypatch)
    assert event["status"] == "timeout" and "'2/day'" in event["message"] and "deadline" in event["message"]
