"""Pages to a JSON Lines file with per-page checkpoints and progress lines: shared by the operators.

With a ``task_state_store`` in the context (Airflow 3.3), each page's checkpoint is committed there,
so a task killed mid-scan and retried by Airflow resumes from its last committed page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.operators.output import Checkpoint, JsonLinesSink
from airflow_vendorauth.pagination.walk import PagingOptions


class ProgressLog:
    """Every ``every`` pages: pages, records, records per second, retries so far."""

    def __init__(self, log: logging.Logger, hook: VendorHook, what: str, every: int, records_before: int) -> None:
        self.log, self.hook, self.what, self.every = log, hook, what, max(1, every)
        self.started, self.records_before = time.monotonic(), records_before

    def page_done(self, sink: JsonLinesSink, *, final: bool = False) -> None:
        if final or sink.pages % self.every == 0:
            elapsed = time.monotonic() - self.started
            rate = (sink.records - self.records_before) / elapsed if elapsed > 0 else 0.0
            self.log.info(
                "%s: %d pages, %d records, %.0f records/s, %d retries so far%s",
                self.what,
                sink.pages,
                sink.records,
                rate,
                self.hook.api_retries,
                " (done)" if final else "",
            )


def stream_to_jsonl(
    hook: VendorHook,
    endpoint: str,
    output: str,
    *,
    context: Mapping[str, Any],
    log: logging.Logger,
    checkpoint_key: str,
    options: PagingOptions | None = None,
    progress_every: int = 10,
) -> dict[str, Any]:
    """Write every record of ``endpoint`` to ``output``; return ``{"path", "records", "pages"}``.

    The caps in ``options`` count the whole scan: a resumed scan asks only for what is left."""
    options = options or PagingOptions()
    store = context.get("task_state_store")
    saved = store.get(checkpoint_key) if store is not None else None
    resume = Checkpoint.from_json(saved) if isinstance(saved, dict) else None
    if resume is not None:
        log.info(
            "Resuming %s from its last committed page: %d pages, %d records already written to %s",
            endpoint,
            resume.pages,
            resume.records,
            output,
        )
    sink = JsonLinesSink(output, resume_from=resume)
    progress = ProgressLog(log, hook, f"{hook.profile.display_name} {endpoint}", progress_every, sink.records)
    remaining = replace(
        options,
        max_pages=None if options.max_pages is None else options.max_pages - sink.pages,
        max_records=None if options.max_records is None else options.max_records - sink.records,
        start=resume.next_request if resume else options.start,
    )
    try:
        if resume is None or resume.next_request is not None:
            for batch in hook.page_batches(endpoint, remaining):
                sink.write_page(batch.records)
                if store is not None:  # without a store there is nothing to resume from: no fsync
                    store.set(checkpoint_key, sink.checkpoint(batch.next_request).to_json())
                progress.page_done(sink)
        path = sink.finish()
    except BaseException:
        sink.abort()
        log.error(
            "%s stopped after %d pages: %d records are in %s (kept; a retry resumes from the last committed page)",
            endpoint,
            sink.pages,
            sink.records,
            sink.partial,
        )
        raise
    if store is not None:
        store.delete(checkpoint_key)
    progress.page_done(sink, final=True)
    return {"path": path, "records": sink.records, "pages": sink.pages}


def collect_for_xcom(records: Iterable[Any], limit: int, what: str) -> list[Any]:
    """The records as a list for XCom (it lives in the metadata database), refusing more than ``limit``
    with an error that points to ``output``."""
    collected: list[Any] = []
    for record in records:
        collected.append(record)
        if len(collected) > limit:
            raise ValueError(
                f"{what} has more than {limit} records, too many for XCom (it lives in the metadata database). "
                "Set output_path='/path/{{ ds }}/file.jsonl' to stream them to a file, or max_records to cap them."
            )
    return collected
