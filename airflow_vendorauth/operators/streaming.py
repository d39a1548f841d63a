"""Pages to a JSON Lines file with checkpoints, progress lines and a check against the announced total:
shared by the operators.

With a ``task_state_store`` in the context (Airflow 3.3), checkpoints are committed there off the hot
path (:mod:`.checkpoints`), so a task killed mid-scan and retried by Airflow resumes from its last
committed page, fetching again at most the pages since that commit; every record is in the output
exactly once. When the API announced a total, the records written are compared with it at the end. A
task told to stop (Airflow's SIGTERM, through the operators' ``on_kill``) ends its scan at once with
:class:`~airflow_vendorauth.exceptions.ScanStopped`, the pages written committed (:mod:`airflow_vendorauth.stopping`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from airflow_vendorauth.exceptions import PaginationError
from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.operators.checkpoints import Committer
from airflow_vendorauth.operators.output import Checkpoint, JsonLinesSink
from airflow_vendorauth.pagination.walk import PagingOptions
from airflow_vendorauth.stopping import running_scan


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
    fail_on_shortfall: bool = True,
) -> dict[str, Any]:
    """Write every record of ``endpoint`` to ``output``; return ``{"path", "records", "pages",
    "expected_records"}`` (the total the API announced, None when it announces none).

    The caps in ``options`` count the whole scan: a resumed scan asks only for what is left. A scan that
    ends short of the announced total fails (``fail_on_shortfall``) or warns; one past it warns."""
    options = options or PagingOptions()
    store = context.get("task_state_store")
    resume = _saved_checkpoint(store, checkpoint_key, output, log)
    sink = JsonLinesSink(output, resume_from=resume)
    if resume is not None and sink.resumed:
        log.info(
            "Resuming %s from its last committed page: %d pages, %d records already written to %s",
            endpoint,
            resume.pages,
            resume.records,
            output,
        )
    elif resume is not None:
        log.warning("Starting %s over from its first page, counting from zero: %s", endpoint, sink.restart_reason)
        resume = None
    progress = ProgressLog(log, hook, f"{hook.profile.display_name} {endpoint}", progress_every, sink.records)
    remaining = replace(
        options,
        max_pages=None if options.max_pages is None else options.max_pages - sink.pages,
        max_records=None if options.max_records is None else options.max_records - sink.records,
        start=resume.next_request if resume else options.start,
    )
    committer = Committer(store, checkpoint_key, sink.sync, log) if store is not None else None
    total: int | None = resume.total if resume else None
    try:
        with running_scan() as point:
            if resume is None or resume.next_request is not None:
                batches = hook.page_batches(endpoint, remaining)
                try:
                    for batch in batches:
                        point.writing = True  # a stop asked from here on waits for this page's checkpoint
                        sink.write_page(batch.records)
                        total = batch.total if batch.total is not None else total
                        if committer is not None:  # without a store there is nothing to resume from: no fsync
                            committer.offer(sink.checkpoint(batch.next_request, durable=False, total=total))
                        point.page_written()
                        progress.page_done(sink)
                except BaseException as exc:
                    _end_paging(batches, exc)
                    raise
        if committer is not None:
            committer.close(commit=False)
    except BaseException:
        if committer is not None and not committer.closed:
            committer.close(commit=True)  # a failed or stopped try: what was written is committed
        sink.abort()
        log.error(
            "%s stopped after %d pages: %d records are in %s (kept; a retry resumes from the last committed page)",
            endpoint,
            sink.pages,
            sink.records,
            sink.partial,
        )
        raise
    try:
        check_total(hook, endpoint, sink.records, total, options, sink.pages, log, fail_on_shortfall, sink.partial)
    except PaginationError:
        sink.abort()
        if store is not None:
            store.delete(checkpoint_key)  # a retry starts over: the API may have settled
        raise
    path = sink.finish()
    if store is not None:
        store.delete(checkpoint_key)
    progress.page_done(sink, final=True)
    return {"path": path, "records": sink.records, "pages": sink.pages, "expected_records": total}


def _end_paging(batches: Any, exc: BaseException) -> None:
    """End the paging driver of a scan that ends with ``exc``, raised in the loop over its pages (a stop
    raised while a page is written, or an error writing it). Closed, the driver waits for the pages in
    flight; told of a stop (ScanStopped, KeyboardInterrupt), it does not, so the final commit comes before
    the supervisor's SIGKILL (``pagination/drivers.py``). Left to the garbage collector, it would only be
    closed, and only once the loop is left."""
    try:
        if isinstance(exc, Exception | GeneratorExit) or not hasattr(batches, "throw"):
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        else:
            batches.throw(exc)
    except BaseException:  # noqa: BLE001 - the driver re-raises the stop; ``exc`` goes on in any case
        pass


def _saved_checkpoint(store: Any, key: str, output: str, log: logging.Logger) -> Checkpoint | None:
    saved = store.get(key) if store is not None else None
    if saved is None:
        return None
    try:
        return Checkpoint.from_json(saved)
    except ValueError as exc:
        log.warning("Ignoring the saved checkpoint of %s (%s): starting over", output, exc)
        return None


def check_total(
    hook: VendorHook,
    endpoint: str,
    records: int,
    total: int | None,
    options: PagingOptions,
    pages: int,
    log: logging.Logger,
    fail_on_shortfall: bool,
    kept_in: str | None = None,
) -> None:
    """Say when the records fall short of the announced total (both numbers in the log), and with
    ``fail_on_shortfall`` raise a PaginationError naming the connection, the numbers and the fix."""
    shortfall = _compare_with_total(records, total, options, pages, endpoint, log)
    if shortfall is None:
        return
    log.warning("%s: %s", endpoint, shortfall)
    if fail_on_shortfall:
        kept = f" The records are kept in {kept_in}, not given the final name." if kept_in else ""
        raise PaginationError(
            f"{hook.profile.display_name} {endpoint} (connection {hook.conn_id!r}): {shortfall}.{kept} If the "
            "API's total is known to be unreliable, set fail_on_shortfall=False to accept the records with a warning."
        )


def _compare_with_total(
    records: int, total: int | None, options: PagingOptions, pages: int, endpoint: str, log: logging.Logger
) -> str | None:
    """Compare the records written with the total the API announced; the shortfall, or None. A cap
    (``max_records``, ``max_pages``) that stopped the scan is not a shortfall."""
    if total is None:
        return None
    expected = total if options.max_records is None else min(total, options.max_records)
    if options.max_pages is not None and pages >= options.max_pages:
        return None
    if records < expected:
        return f"the API announced {expected} records but the pages held {records} ({expected - records} missing)"
    if records > expected and options.max_records is None:
        log.warning(
            "%s: the pages held %d records, more than the %d the API announced (records added during the scan?)",
            endpoint,
            records,
            expected,
        )
    return None


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
