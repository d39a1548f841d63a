"""One ``httpx.AsyncClient`` per credential and event loop, shared by every hook of the process.

A triggerer runs a thousand deferred waits in one event loop, each with a hook of its own; a client per
hook would be a thousand connection pools and up to a thousand TCP connections to one API. Here the
hooks of one credential (and one base URL, TLS setting, timeout and header set) share one pooled client,
counted by reference and closed when the last hook lets go of it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Hashable

import httpx

#: Connections per shared client, all kept alive: a thousand waits reuse these instead of opening
#: (and closing) a connection each, which also keeps the API's connection count low.
LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=60.0)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, list[object]]] = (
    weakref.WeakKeyDictionary()
)
_guard = threading.Lock()


def acquire(key: Hashable, make: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """The shared client of ``key`` on the running loop (made on first use); release it once done."""
    loop = asyncio.get_running_loop()
    with _guard:
        entry = _clients.setdefault(loop, {}).get(key)
        if entry is None or entry[0].is_closed:  # type: ignore[attr-defined]
            entry = _clients[loop][key] = [make(), 0]
        entry[1] = int(entry[1]) + 1  # type: ignore[call-overload]
        return entry[0]  # type: ignore[return-value]


def current(key: Hashable) -> httpx.AsyncClient | None:
    """The shared client of ``key`` on the running loop, if one is open (no new reference taken)."""
    with _guard:
        entry = _clients.get(asyncio.get_running_loop(), {}).get(key)
    return None if entry is None or entry[0].is_closed else entry[0]  # type: ignore[attr-defined,return-value]


async def release(key: Hashable) -> None:
    """One user less; the last one closes the client."""
    loop = asyncio.get_running_loop()
    with _guard:
        entry = _clients.get(loop, {}).get(key)
        if entry is None:
            return
        entry[1] = int(entry[1]) - 1  # type: ignore[call-overload]
        if entry[1] > 0:  # type: ignore[operator]
            return
        del _clients[loop][key]
    await entry[0].aclose()  # type: ignore[attr-defined]


def shared_clients() -> int:
    """How many shared clients are open on the running loop (for tests and benchmarks)."""
    with _guard:
        return len(_clients.get(asyncio.get_running_loop(), {}))
