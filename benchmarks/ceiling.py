"""Benchmark 3, the generic type's ceiling (``max_concurrency``): ``concurrency="auto"`` under ceilings
of 4, 8, 16 and 32 against the sandbox's 40 ms API allowing 16 requests at once, and allowing only 4
(429 with ``Retry-After: 1`` past the limit), 20,000 records, 100 a page. The hook's own scan (no
task, no checkpoints: the paging alone), interleaved rounds, median; what the default of 16 rests on."""

from __future__ import annotations

import json
import os
import statistics
import time

from harness import prepare_airflow_home, require, table

RECORDS = 20_000
PAGES = RECORDS // 100
LATENCY_MS = 40
CEILINGS = (4, 8, 16, 32)
ALLOWED = (16, 4)
ROUNDS = 3


#: The adaptive windows of the scans, in order: what auto reached is read off them (the sandbox's own peak
#: cannot tell, as it refuses what passes the API's limit).
WINDOWS: list[object] = []


def record_windows() -> None:
    """Keep every scan's window (benchmark-only instrumentation of the client's ``window_for``)."""
    from airflow_vendorauth.client import api_client
    from airflow_vendorauth.pagination import drivers

    def recording(options: object, ceiling: int) -> tuple[object, object]:
        window, threads = drivers.window_for(options, ceiling)  # type: ignore[arg-type]
        WINDOWS.append(window)
        return window, threads

    api_client.window_for = recording  # type: ignore[assignment]


def scan(sandbox: object, ceiling: int) -> tuple[float, int, int, int]:
    """Seconds of one scan with a fresh hook (fresh connections, fresh window), the 429s it got, and
    auto's window: the most pages it let run at once, and where it ended."""
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
    from airflow_vendorauth.sandbox.connections import oauth2_connection

    conn = oauth2_connection(sandbox.url, max_concurrency=ceiling)  # type: ignore[attr-defined]
    conn["extra"]["pagination"]["page_size"] = 100
    os.environ["AIRFLOW_CONN_BENCH_CEILING"] = json.dumps(conn)
    hook = OAuth2Hook("bench_ceiling")
    hook.get_token()
    refused = sandbox.stats().get("oauth2", {}).get("status_429", 0)  # type: ignore[attr-defined]
    started = time.perf_counter()
    before = len(WINDOWS)
    records = sum(len(batch.records) for batch in hook.page_batches("/items"))
    seconds = time.perf_counter() - started
    hook.close()
    require(records == RECORDS, f"ceiling {ceiling}: {records} records, {RECORDS} expected")
    require(len(WINDOWS) == before + 1, f"ceiling {ceiling}: the scan's window was not seen")
    window = WINDOWS[-1]
    refused_now = sandbox.stats()["oauth2"].get("status_429", 0) - refused  # type: ignore[attr-defined]
    return seconds, refused_now, window.peak, window.concurrency  # type: ignore[attr-defined]


def main() -> str:
    prepare_airflow_home()
    from airflow_vendorauth.sandbox.client import Sandbox

    record_windows()
    rows = []
    with Sandbox() as sandbox:
        for allowed in ALLOWED:
            sandbox.reset()
            sandbox.configure(sizes={"oauth2.items": RECORDS})
            sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=LATENCY_MS, max_in_flight=allowed)
            runs: dict[int, list[tuple[float, int, int, int]]] = {c: [] for c in CEILINGS}
            for _ in range(ROUNDS):
                for ceiling in CEILINGS:
                    runs[ceiling].append(scan(sandbox, ceiling))
            require(sandbox.faults()[0]["served"] >= PAGES * ROUNDS * len(CEILINGS), "the limited API saw fewer requests than pages")
            floor = PAGES * LATENCY_MS / 1000 / allowed
            for ceiling in CEILINGS:
                seconds = statistics.median(run[0] for run in runs[ceiling])
                refused = statistics.median(run[1] for run in runs[ceiling])
                peaks = sorted({run[2] for run in runs[ceiling]})
                ends = sorted({run[3] for run in runs[ceiling]})
                mark = " (default)" if ceiling == 16 else ""
                rows.append([
                    allowed, f"{ceiling}{mark}", f"{seconds:.2f}", f"{seconds / floor:.1f}x", f"{refused:.0f}",
                    "/".join(map(str, peaks)), "/".join(map(str, ends)),
                ])
    return table(
        f"concurrency=\"auto\" under each ceiling, {PAGES} pages of {LATENCY_MS} ms, the API allowing N at once (hook alone, median of {ROUNDS})",
        ["API allows", "max_concurrency", "seconds", "vs floor (pages x latency / N)", "429s per scan",
         "auto's most at once (each round)", "auto at the end"],
        rows,
    )


if __name__ == "__main__":
    main()
