"""The quota decision of one credential, as a pure function of its state (a JSON-able dict), for the
memory and file stores; :mod:`.redis_store` runs the same rules as one Lua script on Redis's clock.

Each rate is a **bucketed sliding window**: its window is cut into :data:`BUCKETS` buckets of
``period / BUCKETS`` seconds, numbered ``floor(t / width)`` since the epoch, each counting the permits
granted in it. A permit is granted when the permits of the current bucket and the :data:`BUCKETS` before it
(a span a little longer than the window: every window of that length that ends now lies within it), plus
this one, stay within the count; otherwise the wait is until enough of the oldest buckets have left that
span. So no window of the rate's length ever holds more than its count (a vendor counting fixed or sliding
windows refuses nothing), and a steady caller gets ``BUCKETS / (BUCKETS + 1)`` of the count or more per
window (the window's count at once, then each permit as the one a window before it leaves).

The state: ``windows`` (rate name -> ``[[bucket, permits], ...]``, oldest first), ``leases`` (lease id ->
expiry: the requests in flight; a process that dies frees its slots when their leases expire; a running
request's are renewed, :mod:`.renewal`), ``blocked_until`` and ``blocked_why`` (a 429's ``Retry-After``, a
spent window the API announced), ``learned_windows`` (rate name -> ``[count, period]``, from
``RateLimit-Policy``) and ``learned_in_flight`` (what concurrency refusals taught). Times are seconds since
the epoch (one clock for the processes of one machine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from airflow_vendorauth.quota.spec import Rate

#: How long a full "requests at once" makes a caller wait before asking again (a slot frees when a
#: request ends, which the store does not announce).
IN_FLIGHT_POLL_SECONDS = 0.01
#: The buckets a rate's window is cut into (the Lua script of :mod:`.redis_store` uses the same number).
BUCKETS = 20


@dataclass(frozen=True)
class Decision:
    """A permit (``granted``), or how long to wait and which quota says so."""

    granted: bool
    wait: float = 0.0
    why: str = ""
    #: The wait is the API's block (a 429's ``Retry-After``, a window said spent): every waiter of the
    #: credential would otherwise return at its end at once (:data:`~.limiter.BLOCK_SPREAD_SECONDS`).
    blocked: bool = False


GRANTED = Decision(True)


def empty() -> dict[str, Any]:
    return {
        "windows": {},
        "leases": {},
        "blocked_until": 0.0,
        "blocked_why": "",
        "learned_windows": {},
        "learned_in_flight": 0,
    }


def _rates(state: dict[str, Any], rates: tuple[Rate, ...]) -> list[tuple[str, int, float]]:
    declared = [(r.name, r.count, r.period) for r in rates]
    names = {name for name, _, _ in declared}
    learned = [(name, int(c), float(p)) for name, (c, p) in state["learned_windows"].items() if name not in names]
    return declared + learned


def _window(state: dict[str, Any], name: str, period: float, now: float) -> tuple[list[list[int]], int, float]:
    """The rate's buckets still in its span (oldest first), the current bucket, and a bucket's width."""
    width = period / BUCKETS
    current = math.floor(now / width)
    held = [[int(b), int(n)] for b, n in state["windows"].get(name, ()) if int(b) >= current - BUCKETS]
    held.sort()
    return held, current, width


def _wait(held: list[list[int]], count: int, width: float, now: float, more: int = 1) -> float:
    """Seconds until ``more`` permits fit in the window (0: now)."""
    excess = sum(n for _, n in held) + more - count
    if excess <= 0:
        return 0.0
    for bucket, permits in held:
        excess -= permits
        if excess <= 0:
            return max((bucket + BUCKETS + 1) * width - now, 1e-6)  # when this bucket leaves the span
    return (held[-1][0] + BUCKETS + 1) * width - now if held else width  # more than the count: a full span


def _add(held: list[list[int]], current: int, permits: int) -> list[list[int]]:
    for entry in held:
        if entry[0] == current:
            entry[1] += permits
            return held
    held.append([current, permits])
    held.sort()
    return held


def acquire(
    state: dict[str, Any], now: float, rates: tuple[Rate, ...], max_in_flight: int | None, lease: str, lease_seconds: float
) -> Decision:
    if state["blocked_until"] > now:
        return Decision(False, state["blocked_until"] - now, state["blocked_why"] or "blocked by the API", blocked=True)
    leases = state["leases"]
    for held in [k for k, expiry in leases.items() if expiry <= now]:
        del leases[held]
    cap = max_in_flight or 0
    learned = int(state["learned_in_flight"] or 0)
    if learned and (not cap or learned < cap):
        cap = learned
    if cap and len(leases) >= cap:
        return Decision(False, IN_FLIGHT_POLL_SECONDS, f"{cap} at once")
    refused, worst, worst_name, windows = False, 0.0, "", {}
    for name, count, period in _rates(state, rates):
        held, current, width = _window(state, name, period, now)
        wait = _wait(held, count, width, now)
        if wait > 0:
            refused = True
            if wait > worst:
                worst, worst_name = wait, name
        windows[name] = _add(held, current, 1)
    if refused:
        return Decision(False, worst, worst_name)
    state["windows"].update(windows)
    leases[lease] = now + lease_seconds
    return GRANTED


def release(state: dict[str, Any], lease: str) -> None:
    state["leases"].pop(lease, None)


def renew(state: dict[str, Any], now: float, leases: list[str], lease_seconds: float) -> None:
    """The requests of ``leases`` still run: each lease still held expires ``lease_seconds`` from now (one
    given back or lapsed meanwhile stays gone)."""
    held = state["leases"]
    for lease in leases:
        if lease in held and held[lease] > now:
            held[lease] = now + lease_seconds


def in_flight(state: dict[str, Any], now: float) -> int:
    return sum(1 for expiry in state["leases"].values() if expiry > now)


def block(state: dict[str, Any], now: float, seconds: float, why: str) -> None:
    """Nobody of this credential sends before ``now + seconds`` (a later block wins)."""
    if now + seconds > state["blocked_until"]:
        state["blocked_until"], state["blocked_why"] = now + seconds, why


def correct(state: dict[str, Any], now: float, rate: Rate, remaining: int) -> None:
    """The API says ``remaining`` requests are left in ``rate``'s window (another client may share the
    quota): what the window holds is raised to ``count - remaining`` (never lowered), the difference
    counted in the current bucket, so no more than ``remaining`` go until it slides on (``remaining`` 0:
    the window full, nothing until a whole window has passed)."""
    held, current, _ = _window(state, rate.name, rate.period, now)
    missing = rate.count - max(0, remaining) - sum(n for _, n in held)
    if missing > 0:
        state["windows"][rate.name] = _add(held, current, missing)


def learn_rate(state: dict[str, Any], rate: Rate) -> None:
    state["learned_windows"][rate.name] = [rate.count, rate.period]


def learn_in_flight(state: dict[str, Any], at_once: int) -> None:
    """Requests at once the API refused past: the lowest learnt stays."""
    held = int(state["learned_in_flight"] or 0)
    if not held or at_once < held:
        state["learned_in_flight"] = max(1, at_once)
