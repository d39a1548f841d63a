"""What an answer's headers say about the quota: the IETF ``RateLimit-Policy`` / ``RateLimit`` (draft
generations: ``25;w=1`` and ``limit=25, remaining=3, reset=1``; ``"name";q=25;w=1`` and
``"name";r=3;t=1``; the split ``RateLimit-Limit/Remaining/Reset``), and the common
``X-RateLimit-Limit/Remaining/Reset`` (reset in seconds, or as an epoch: told apart by size)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from airflow_vendorauth.quota.spec import MAX_COUNT, UNITS, Rate

#: A reset above this is an epoch (seconds since 1970), not a delta.
EPOCH_THRESHOLD = 1_000_000_000
#: A reset above this is an epoch in milliseconds (some APIs send ``X-RateLimit-Reset`` so).
EPOCH_MS_THRESHOLD = 1_000_000_000_000


@dataclass(frozen=True)
class Window:
    """One window's news: ``remaining`` requests until ``reset`` seconds from now; its ``limit`` if said."""

    remaining: int
    reset: float | None
    limit: int | None = None


@dataclass(frozen=True)
class Said:
    policies: tuple[Rate, ...] = ()
    windows: tuple[Window, ...] = ()


def rate_of(quota: int, window_seconds: float) -> Rate | None:
    """A policy as a :class:`Rate`: its window when it is one of ours, else the finest unit whose whole
    count keeps a pace no faster than the policy's (``100;w=600``: 10/minute; never 1/second, 600 a window)."""
    if quota <= 0 or window_seconds <= 0:
        return None
    for unit, seconds in UNITS.items():
        if abs(window_seconds - seconds) < 1e-6:
            return Rate(quota, unit)
    for unit, seconds in UNITS.items():
        if (count := int(quota * seconds / window_seconds + 1e-9)) >= 1:
            return Rate(min(count, MAX_COUNT), unit)
    return Rate(1, "day")


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text.strip().strip('"'))
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # "nan", "inf": said nothing


def _params(item: str) -> tuple[str, dict[str, str]]:
    """``25;w=1`` -> ("25", {"w": "1"}); ``"default";q=25;w=1`` -> ("default", {...})."""
    head, *rest = [p.strip() for p in item.split(";")]
    params = {}
    for part in rest:
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip()
    return head.strip('"'), params


def _reset(value: float | None, now: float) -> float | None:
    if value is None:
        return None
    if value > EPOCH_MS_THRESHOLD:
        value /= 1000.0
    return max(0.0, value - now) if value > EPOCH_THRESHOLD else max(0.0, value)


def read(headers: Mapping[str, str], now: float | None = None) -> Said:
    now = time.time() if now is None else now
    policies: list[Rate] = []
    for item in (headers.get("RateLimit-Policy") or headers.get("X-RateLimit-Policy") or "").split(","):
        if not item.strip():
            continue
        head, params = _params(item)
        quota = _number(params.get("q")) or _number(head)
        window = _number(params.get("w"))
        if quota and window and (rate := rate_of(int(quota), window)):
            policies.append(rate)
    windows: list[Window] = []
    combined = headers.get("RateLimit")
    if combined and re.search(r";\s*r\s*=", combined):
        # draft 8 and later: one item per policy, '"burst";r=50;t=1, "daily";r=0;t=40000': each its own window
        for item in combined.split(","):
            _, params = _params(item)
            remaining = _number(params.get("r"))
            if remaining is not None:
                windows.append(Window(int(remaining), _reset(_number(params.get("t")), now)))
    elif combined:
        fields = dict((k.strip().lower(), v) for k, _, v in (p.partition("=") for p in re.split(r"[,;]", combined)))
        remaining = _number(fields.get("remaining", fields.get("r")))
        if remaining is not None:
            limit = _number(fields.get("limit"))
            windows.append(Window(int(remaining), _reset(_number(fields.get("reset", fields.get("t"))), now),
                                  int(limit) if limit else None))
    for prefix in ("RateLimit-", "X-RateLimit-", "X-Rate-Limit-"):
        remaining = _number(headers.get(prefix + "Remaining"))
        if remaining is not None:
            limit = _number(headers.get(prefix + "Limit"))
            windows.append(Window(int(remaining), _reset(_number(headers.get(prefix + "Reset")), now),
                                  int(limit) if limit else None))
    return Said(tuple(policies), tuple(windows))
