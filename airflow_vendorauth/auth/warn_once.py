"""Log a cache problem once per process: a broken cache must be visible, not noisy."""

from __future__ import annotations

import logging
import threading

_seen: set[str] = set()
_guard = threading.Lock()


def warn_once(logger: logging.Logger | None, key: str, message: str, *args: object) -> None:
    with _guard:
        if key in _seen:
            return
        _seen.add(key)
    (logger or logging.getLogger("airflow_vendorauth")).warning(message, *args)


def forget_warnings() -> None:
    """Let every warning be said again (tests start each from a clean process state)."""
    with _guard:
        _seen.clear()
