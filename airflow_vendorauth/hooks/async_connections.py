"""Connections read by coroutines, once per connection for a whole event loop at a time.

A triggerer runs a thousand deferred waits of one connection; each reads the connection when it
starts, and each read is a round trip through the triggerer's supervisor. Here concurrent reads of one
connection on one loop share a single read, and a read stays good for :data:`TTL_SECONDS`, so a
connection edited in the UI reaches new triggers within that time.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from airflow_vendorauth.compat import aget_connection

TTL_SECONDS = 30.0

_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Future[Any]]]] = (
    weakref.WeakKeyDictionary()
)


async def read_connection(conn_id: str) -> Any:
    """The connection, read once for every coroutine of this loop asking within :data:`TTL_SECONDS`."""
    loop = asyncio.get_running_loop()
    reads = _reads.setdefault(loop, {})
    held = reads.get(conn_id)
    if held is None or time.monotonic() - held[0] > TTL_SECONDS or (held[1].done() and held[1].exception()):
        held = reads[conn_id] = (time.monotonic(), asyncio.ensure_future(aget_connection(conn_id)))
    return await asyncio.shield(held[1])


def forget_async_reads() -> None:
    """Read every connection afresh (tests)."""
    _reads.clear()
