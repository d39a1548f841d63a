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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from airflow_vendorauth.exceptions import PaginationError, ScanStopped, TokenRequestError
from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.lineage.datasets import without_secrets
from airflow_vendorauth.operators.checkpoints import Committer
from airflow_vendorauth.operators.output import Checkpoint, JsonLinesSink
from airflow_vendorauth.operators.scan_identity import differences, endpoint_path, scan_identity
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
    scan = scan_identity(
        connection=hook.conn_id,
        endpoint=endpoint,
        output=output,
        params=options.params,
        headers=options.headers,
        pagination=options.pagination,
        connection_pagination=hook.settings.extra("pagination"),
        max_pages=options.max_pages,
        max_records=options.max_records,
    )
    resume = _saved_checkpoint(store, checkpoint_key, endpoint, output, scan, log)
    sink = JsonLinesSink(output, resume_from=resume, scan=scan)
    if resume is not None and sink.resumed:
        log.info(
            "Resuming %s from its last committed page: %d pages, %d records already written to %s",
            endpoint,
            resume.pages,
            resume.records,
            without_secrets(output),
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
    except BaseException as exc:
        if committer is not None and not committer.closed:
            committer.close(commit=True)  # a failed or stopped try: what was written is committed
        _say_where_it_stopped(log, endpoint, sink, exc)
        raise
    try:
        check_total(
            hook, endpoint, sink.records, total, options, sink.pages, log, fail_on_shortfall, without_secrets(sink.partial)
        )
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


def _say_where_it_stopped(log: logging.Logger, endpoint: str, sink: JsonLinesSink, exc: BaseException) -> None:
    """End the output of a failed or stopped scan and say what it holds. Nothing written (not even by an
    earlier try): no empty partial output is left, and the log says nothing was fetched and why (refused
    credentials: a retry would fail alike). Pages written: they are kept, and a retry resumes from the last
    committed page; when the error says a retry cannot help (``retryable`` False: credentials refused, a
    request the API refused), the log says that it must be fixed first."""
    cannot_help = getattr(exc, "retryable", None) is False
    if sink.pages == 0:
        sink.discard()
        if isinstance(exc, TokenRequestError):
            why = (
                f"the token request for connection {exc.conn_id!r} failed (the error below names the field to fix)"
                + ("; a retry fails alike until the connection is fixed" if cannot_help else "")
            )
        elif isinstance(exc, ScanStopped):
            why = "the task was told to stop before the first page"
        else:
            why = "the first page failed (the error below)"
        log.error("%s: nothing was fetched and no partial output is left: %s", endpoint, why)
        return
    sink.abort()
    log.error(
        "%s stopped after %d pages: %d records are in %s (kept; a retry resumes from the last committed page%s)",
        endpoint,
        sink.pages,
        sink.records,
        without_secrets(sink.partial),
        " once the error below is fixed" if cannot_help else "",
    )


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


def _saved_checkpoint(
    store: Any, key: str, endpoint: str, output: str, scan: Mapping[str, str], log: logging.Logger
) -> Checkpoint | None:
    """The checkpoint this scan resumes from: None when there is none, or it is not one, or it belongs to
    another scan (a task cleared after its endpoint, parameters, paging or output changed: Airflow keeps
    task_state_store across a clear). Another scan's checkpoint is set aside (deleted) and said; the
    scan then starts over, its partial output written anew (``JsonLinesSink``), never appended to."""
    saved = store.get(key) if store is not None else None
    if saved is None:
        return None
    try:
        checkpoint = Checkpoint.from_json(saved)
    except ValueError as exc:
        log.warning("Ignoring the saved checkpoint of %s (%s): starting over", without_secrets(output), exc)
        return None
    if differs := differences(checkpoint.scan, scan):
        log.warning(
            "Setting aside the checkpoint saved under %r: it belongs to another scan than %s (%s). Starting %s "
            "over from its first page; the partial output of the other scan (%d records) is discarded",
            key,
            endpoint_path(endpoint),
            "; ".join(differs),
            endpoint_path(endpoint),
            checkpoint.records,
        )
        store.delete(key)
        return None
    return checkpoint




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


def records_for_xcom(
    hook: VendorHook,
    endpoint: str,
    options: PagingOptions,
    *,
    limit: int,
    what: str,
    log: logging.Logger,
    fail_on_shortfall: bool,
) -> list[Any]:
    """Every record of ``endpoint`` as a list for XCom, checked against the total the API announced as a
    file's records are (:func:`check_total`): no task ends green with 150 of 250 records."""
    pages, total = 0, None

    def records() -> Iterator[Any]:
        nonlocal pages, total
        for batch in hook.page_batches(endpoint, options):
            pages += 1
            total = batch.total if batch.total is not None else total
            yield from batch.records

    collected = collect_for_xcom(records(), limit, what)
    log.info("%s: %d pages, %d records returned to XCom", endpoint, pages, len(collected))
    check_total(hook, endpoint, len(collected), total, options, pages, log, fail_on_shortfall)
    return collected


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
