"""One hook per connection and event loop for the triggers running on it.

A triggerer holds a thousand deferred waits; with a hook each, it would hold a thousand copies of the
same validated settings, token endpoint, retry policy and auth, and read the connection a thousand
times. The triggers of one connection on one loop share one hook instead (its async client is pooled
anyway), counted by reference: when the last of them ends, the hook is closed and forgotten, so a
connection edited meanwhile is read afresh by the next trigger.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

_hooks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, list[Any]]] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def shared_hook(conn_id: str) -> AsyncIterator[Any]:
    """The hook of ``conn_id`` (chosen by its type) shared by every trigger of this loop using it."""
    from airflow_vendorauth.hooks.base import hook_for_connection_async

    table = _hooks.setdefault(asyncio.get_running_loop(), {})
    entry = table.get(conn_id)
    if entry is None:
        entry = table[conn_id] = [asyncio.ensure_future(hook_for_connection_async(conn_id)), 0]
    entry[1] += 1
    try:
        yield await asyncio.shield(entry[0])
    finally:
        entry[1] -= 1
        if entry[1] == 0 and table.get(conn_id) is entry:
            del table[conn_id]
            made = entry[0]
            if made.done() and not made.cancelled() and made.exception() is None:
                await made.result().aclose()
