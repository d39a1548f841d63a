"""A task process of the explorer: calls the API through one rotating refresh-token connection until told to
stop, from two threads (a scan's page threads) or from an event loop whose token waiters are cancelled at
random (a trigger's timeouts), and records every call's outcome, one JSON line each, in its journal.

``python -m tests.explorer.worker JOURNAL STOP_FILE STYLE [LEASE_SECONDS]``: STYLE is ``threads`` or
``cancelling``. Airflow's SIGTERM handling is reproduced as the task runner does it: a stop asked of the
task (``stopping.stop_task``), whose held work (a refresh in flight) ends before the process does; the
explorer's supervisor SIGKILLs it 5 s later, as Airflow's does.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Any


def main() -> None:
    journal_path, stop_file, style = sys.argv[1], sys.argv[2], sys.argv[3]
    from airflow_vendorauth import stopping
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    journal = open(journal_path, "a", buffering=1)
    guard = threading.Lock()

    def note(**event: Any) -> None:
        with guard:
            journal.write(json.dumps({"at": time.time(), "pid": os.getpid(), **event}) + "\n")

    class Task:  # what Airflow's task runner stops: its on_kill, in the main thread
        dag_id, task_id = "explorer", f"worker-{os.getpid()}"

    task = Task()

    def on_term(signum: int, frame: Any) -> None:
        note(kind="sigterm")
        stopping.stop_task(task)

    signal.signal(signal.SIGTERM, on_term)
    hook = OAuth2Hook("oauth2_default")
    assert hook.settings is not None  # the connection is read and validated before the schedule starts
    note(kind="ready")

    seen: list[tuple[int, bool] | None] = [None]

    def chain_generation() -> tuple[int, bool] | None:
        """The generation of the chain this process holds in memory, and whether it carries a spend's mark."""
        provider = hook.client.provider
        chain = provider.chain._memory.load_refresh_token(provider.key) if provider.chain else None
        return (chain.generation, chain.pending is not None) if chain is not None else None

    def call() -> None:
        try:
            before = hook.token_requests
            hook.request("GET", "/items", params={"per_page": 1})
            note(kind="ok")
            if hook.token_requests > before:  # this process refreshed: it holds the newest copy of the chain
                note(kind="refreshed", requests=hook.token_requests)
        except BaseException as error:
            note(kind="failed", error=type(error).__name__, message=str(error)[:600])
            if type(error).__name__ == "ScanStopped":
                raise
        finally:
            journal_generation()

    def journal_generation() -> None:
        held = chain_generation()
        if held != seen[0]:  # the newest copy this process holds (its own rotation, adopted, or marked)
            seen[0] = held
            note(kind="generation", generation=held[0] if held else None, pending=bool(held and held[1]))

    def running() -> bool:
        return not os.path.exists(stop_file) and not stopping.stop_asked()

    with stopping.task_running(task):
        if style == "cancelling":
            asyncio.run(_cancelling(hook, note, running, journal_generation))
        else:
            def loop() -> None:
                while running():
                    try:
                        call()
                    except BaseException as error:  # noqa: BLE001 - a stopped call ends this thread's loop
                        note(kind="loop_ended", error=type(error).__name__)
                        return
                    time.sleep(0.03)
                note(kind="loop_ended", stop_file=os.path.exists(stop_file), stop_asked=stopping.stop_asked())

            threads = [threading.Thread(target=loop, daemon=True) for _ in range(2)]
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                time.sleep(0.05)  # the main thread is where the SIGTERM lands, as in a task
    note(kind="ended", stopped=stopping.stop_asked())
    hook.close()


async def _cancelling(hook: Any, note: Any, running: Any, journal: Any) -> None:
    while running():
        waiter = asyncio.ensure_future(hook.aget_token())
        await asyncio.sleep(random.uniform(0, 0.03))
        if not waiter.done():
            waiter.cancel()
            note(kind="cancelled")
        try:
            await hook.arequest("GET", "/items", params={"per_page": 1})
            note(kind="ok")
        except Exception as error:  # noqa: BLE001 - every outcome goes to the journal
            note(kind="failed", error=type(error).__name__, message=str(error)[:600])
        journal()
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    main()
