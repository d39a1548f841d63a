"""A trigger that measures its own event loop: how late each 50 ms sleep wakes up (the loop's lag), in
the triggerer where a thousand other triggers run. Benchmark-only; importable by the triggerer through
PYTHONPATH."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

TICK = 0.05


class LagProbeTrigger(BaseTrigger):
    def __init__(self, *, seconds: float, path: str) -> None:
        super().__init__()
        self.seconds, self.path = seconds, path

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("lag_probe.LagProbeTrigger", {"seconds": self.seconds, "path": self.path})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        end = loop.time() + self.seconds
        while loop.time() < end:
            before = loop.time()
            await asyncio.sleep(TICK)
            lags.append(max(0.0, loop.time() - before - TICK))
        with open(self.path, "w") as out:
            json.dump(lags, out)
        yield TriggerEvent({"status": "success", "samples": len(lags)})
