"""What the API's ``remaining`` costs a steady client: a model on a simulated clock, no processes.

One client of a quota of 25/s calls as fast as its permits allow, with at most ``in flight`` requests
awaiting their answer (0: no cap) and ``latency`` seconds a request; the API counts an exact sliding window
and answers each request with what remains, alone and beside another client at 5/s. It compares the
correction as released (our permits of the whole 21-bucket span count as what the API holds) with the
variant tried and not kept (only the buckets wholly inside the API's window), side by side: requests per
second of ours, and the answers the API refuses (each 429's ``Retry-After`` blocks the client, as the
limiter does). ``python benchmarks/quota_correction_model.py``; the README's Quotas section quotes it."""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from typing import Any

from harness import ROOT

sys.path.insert(0, str(ROOT))

COUNT, SECONDS = 25, 60.0


def _inside_only(state: dict[str, Any], now: float, rate: Any, remaining: int) -> None:
    """The variant not kept: our permits of the span's oldest bucket (it may have begun before the API's
    window) left out. It never lets another client's requests hide behind ours the API no longer counts,
    but those of ours it still counts are added again, in the current bucket, for a whole window."""
    from airflow_vendorauth.quota import state as rules

    held, current, _ = rules._window(state, rate.name, rate.period, now)
    missing = rate.count - max(0, remaining) - sum(n for b, n in held if b > current - rules.BUCKETS)
    if missing > 0:
        state["windows"][rate.name] = rules._add(held, current, missing)


def run(correct: Callable[..., None], others: float, in_flight: int, latency: float) -> tuple[float, int]:
    """Our requests per second and the API's refusals of ours, with ``others`` a second from another client."""
    from airflow_vendorauth.quota import state as rules
    from airflow_vendorauth.quota.spec import Rate
    from airflow_vendorauth.quota.stores import MemoryQuotaStore

    released = rules.correct
    rules.correct = correct
    try:
        clock = [1000.0]
        store, rate = MemoryQuotaStore(clock=lambda: clock[0]), Rate(COUNT, "second")
        window: collections.deque[float] = collections.deque()  # what the API counts
        answers: list[tuple[float, int, float]] = []  # (when our answer arrives, remaining, Retry-After or 0)
        ours = refused = 0
        theirs_next, end = clock[0], clock[0] + SECONDS

        def api_takes(at: float) -> float:
            """0 when taken; else the Retry-After of its 429 (until the window's oldest leaves it)."""
            while window and window[0] <= at - rate.period:
                window.popleft()
            if len(window) >= COUNT:
                return window[0] + rate.period - at
            window.append(at)
            return 0.0

        while clock[0] < end:
            while others and theirs_next <= clock[0]:
                api_takes(theirs_next)
                theirs_next += 1.0 / others
            for answer in sorted(a for a in answers if a[0] <= clock[0]):
                answers.remove(answer)
                if answer[2]:
                    store.block("k", answer[2], "429")
                store.correct("k", rate, remaining=answer[1])
            if in_flight and len(answers) >= in_flight:
                clock[0] = max(min([a[0] for a in answers] + ([theirs_next] if others else [])), clock[0] + 1e-6)
                continue
            decision = store.acquire("k", (rate,), None, f"l{ours}", 1e-9)
            if decision.granted:
                retry_after = api_takes(clock[0])
                refused += retry_after > 0
                answers.append((clock[0] + latency, COUNT - len(window), retry_after))
                ours += 1
                clock[0] += 0.0005
                continue
            upcoming = [a[0] for a in answers] + [clock[0] + decision.wait] + ([theirs_next] if others else [])
            clock[0] = max(min(upcoming), clock[0] + 1e-6)
        return ours / SECONDS, refused
    finally:
        rules.correct = released


def main() -> str:
    from airflow_vendorauth.quota import state as rules

    lines = [f"{'in flight':>9} {'latency':>7} {'others/s':>8} | {'whole span (released)':>22} | {'inside only (not kept)':>22}"]
    for in_flight, latency in ((1, 0.04), (2, 0.04), (5, 0.2), (0, 0.04)):
        for others in (0.0, 5.0):
            cells = []
            for correct in (rules.correct, _inside_only):
                per_second, refused = run(correct, others, in_flight, latency)
                cells.append(f"{per_second:6.2f}/s {refused:4d} x 429")
            lines.append(f"{in_flight or 'no cap':>9} {latency:7.2f} {others:8.0f} | {cells[0]:>22} | {cells[1]:>22}")
    return "```\n" + "\n".join(lines) + "\n```"


if __name__ == "__main__":
    print(main())
