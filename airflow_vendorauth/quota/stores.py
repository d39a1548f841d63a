"""Where a credential's quota lives: the same place as its tokens (the connection's ``cache``).

- :class:`MemoryQuotaStore`: one process (every hook, thread and event loop of it).
- :class:`FileQuotaStore`: the processes of one machine: one JSON file per credential, read and written
  under a lock file (``filelock``: the kernel frees it when its holder dies), on the machine's clock.
- :class:`~airflow_vendorauth.quota.redis_store.RedisQuotaStore`: every worker, atomic on Redis's clock.

A store raises one of its ``errors`` when it cannot answer; the limiter then falls back to its process's
share (:mod:`.limiter`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from airflow_vendorauth.quota import state as rules
from airflow_vendorauth.quota.spec import Rate
from airflow_vendorauth.quota.state import Decision

T = TypeVar("T")


class QuotaStore(Protocol):
    name: str
    #: What this store raises when it cannot answer (the limiter falls back to a local share).
    errors: tuple[type[BaseException], ...]

    def acquire(
        self, key: str, rates: tuple[Rate, ...], max_in_flight: int | None, lease: str, lease_seconds: float
    ) -> Decision: ...

    def release(self, key: str, lease: str) -> None: ...

    def renew(self, key: str, leases: list[str], lease_seconds: float) -> None: ...

    def in_flight(self, key: str) -> int: ...

    def block(self, key: str, seconds: float, why: str) -> None: ...

    def correct(self, key: str, rate: Rate, remaining: int) -> None: ...

    def learn_rate(self, key: str, rate: Rate) -> None: ...

    def learn_in_flight(self, key: str, at_once: int) -> None: ...


class _RuleStore:
    """The rules of :mod:`.state` applied to a state kept somewhere (:meth:`_update`)."""

    name = "?"
    errors: tuple[type[BaseException], ...] = ()

    def _update(self, key: str, change: Callable[[dict[str, Any], float], T]) -> T:
        raise NotImplementedError

    def acquire(
        self, key: str, rates: tuple[Rate, ...], max_in_flight: int | None, lease: str, lease_seconds: float
    ) -> Decision:
        return self._update(key, lambda s, now: rules.acquire(s, now, rates, max_in_flight, lease, lease_seconds))

    def release(self, key: str, lease: str) -> None:
        self._update(key, lambda s, now: rules.release(s, lease))

    def renew(self, key: str, leases: list[str], lease_seconds: float) -> None:
        self._update(key, lambda s, now: rules.renew(s, now, leases, lease_seconds))

    def in_flight(self, key: str) -> int:
        return self._update(key, rules.in_flight)

    def block(self, key: str, seconds: float, why: str) -> None:
        self._update(key, lambda s, now: rules.block(s, now, seconds, why))

    def correct(self, key: str, rate: Rate, remaining: int) -> None:
        self._update(key, lambda s, now: rules.correct(s, now, rate, remaining))

    def learn_rate(self, key: str, rate: Rate) -> None:
        self._update(key, lambda s, now: rules.learn_rate(s, rate))

    def learn_in_flight(self, key: str, at_once: int) -> None:
        self._update(key, lambda s, now: rules.learn_in_flight(s, at_once))


class MemoryQuotaStore(_RuleStore):
    """Quotas of this process, by credential."""

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._states: dict[str, dict[str, Any]] = {}
        self._guard = threading.Lock()
        self._clock = clock

    def _update(self, key: str, change: Callable[[dict[str, Any], float], T]) -> T:
        with self._guard:
            return change(self._states.setdefault(key, rules.empty()), self._clock())

    def clear(self) -> None:
        with self._guard:
            self._states.clear()


#: The quotas of every memory-cached connection of this process.
MEMORY_QUOTAS = MemoryQuotaStore()
#: How long a file store waits for its lock before it says it cannot answer.
FILE_LOCK_SECONDS = 2.0


class FileQuotaStore(_RuleStore):
    """Quotas of this machine's processes: ``<directory>/<credential>.quota.json``, under its lock file."""

    name = "file"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        import filelock

        self.directory = Path(directory)
        self.errors = (filelock.Timeout, OSError)
        self._locks: dict[str, Any] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> Any:
        import filelock

        with self._guard:
            if key not in self._locks:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                path = self.directory / f"{key}.quota.lock"
                self._locks[key] = filelock.FileLock(str(path), timeout=FILE_LOCK_SECONDS, mode=0o600)
            return self._locks[key]

    def _update(self, key: str, change: Callable[[dict[str, Any], float], T]) -> T:
        path = self.directory / f"{key}.quota.json"
        with self._lock(key):
            try:
                state = {**rules.empty(), **json.loads(path.read_text())}
            except (FileNotFoundError, ValueError):
                state = rules.empty()
            before = json.dumps(state, sort_keys=True)
            result = change(state, time.time())
            after = json.dumps(state, sort_keys=True)
            if after != before:
                partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                partial.write_text(after)
                os.replace(partial, path)
            return result
