"""VendorApiOperator: an authenticated, paginated call inside a DAG, landing its records somewhere useful."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import Asset, BaseOperator

from airflow_vendorauth import stopping
from airflow_vendorauth.lineage import OpenLineageMethods

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_vendorauth.pagination.strategies import Pagination
    from airflow_vendorauth.pagination.walk import PagingOptions

#: Records above this many are refused for XCom (it lives in the metadata database): use ``output_path``.
DEFAULT_MAX_XCOM_RECORDS = 1000


def asset_for_output(output: str) -> Asset:
    """The Asset a task's output is declared as; templated parts of the path become ``*``, and a password,
    query or fragment (a signed URL's signature) is left out of its name and URI (the lineage names'
    rule, ``lineage/datasets.py``): the asset is stored and shown by Airflow."""
    from airflow_vendorauth.operators.output_path import expand_home

    static = expand_home(re.sub(r"\{\{.*?\}\}", "*", output))
    if "://" not in static:  # a local path: nothing to leave out (and no lineage module at parse time)
        return Asset(uri=f"file://{static}", name=f"vendorauth:{static}")
    from airflow_vendorauth.lineage.datasets import without_secrets

    static = without_secrets(static)
    return Asset(uri=static, name=f"vendorauth:{static}")


class VendorApiOperator(OpenLineageMethods, BaseOperator):
    """Call a vendor API with the connection's cached, auto-refreshed token, and page through it.

    :param conn_id: an Airflow connection of type kazi, keyavi, kayzen, smartrecruiters or clazar; the
        hook is chosen by its type.
    :param endpoint: appended to the connection's host path (``/jobs``).
    :param method: HTTP method of a single call (``paginate=False``); pages are always fetched with GET.
    :param params: query parameters (filters, sorting); templated, as the ``query_params`` field
        (Airflow reserves ``params`` for the DAG's Params and refuses to template it).
    :param json: JSON body of a single call; templated.
    :param headers: extra headers; templated.
    :param pagination: a strategy from :mod:`airflow_vendorauth.pagination`; the vendor's default if None.
    :param paginate: False makes one call and returns its JSON body.
    :param max_pages: stop after this many pages. ``max_records``: after this many records.
    :param output_path: local path or object-storage URL (``s3://...``) of a JSON Lines file, templated
        (``/data/{{ ds }}/jobs.jsonl``; a leading ``~`` is the task user's home). Records stream there page by page and XCom gets
        ``{"path", "records", "pages", "expected_records"}``; the output is declared as an Asset. Without
        it, XCom gets the records, and more than ``max_xcom_records`` are refused.
    :param fail_on_shortfall: when the API announced a total and the pages held fewer records, fail the
        task naming both numbers (the default: loading 250 of 500 records silently is worse than a failed
        task); False logs a warning and keeps the records. More records than announced only warn.
    :param progress_every: log a progress line every this many pages.
    :param concurrency: ``"auto"`` (the default): where the API announces a total (page numbers or
        offsets), pages are fetched ahead, as many at once as keeps paying (slow start, then one more at a
        time; halved on a 429 or a timeout; never above the vendor's ceiling); records are still written
        in order, exactly once. A number fixes it; ``1`` pages one at a time. Cursor APIs always page
        one at a time (nothing is known ahead of a cursor).
    """

    template_fields: Sequence[str] = ("conn_id", "endpoint", "query_params", "json", "headers", "output_path")
    template_fields_renderers = {"query_params": "json", "json": "json", "headers": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        conn_id: str,
        endpoint: str,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        pagination: Pagination | None = None,
        paginate: bool = True,
        max_pages: int | None = None,
        max_records: int | None = None,
        output_path: str | None = None,
        progress_every: int = 10,
        max_xcom_records: int = DEFAULT_MAX_XCOM_RECORDS,
        concurrency: int | Literal["auto"] = "auto",
        fail_on_shortfall: bool = True,
        **kwargs: Any,
    ) -> None:
        if "output" in kwargs:
            raise TypeError(
                f"{type(self).__name__} takes output_path= (a file or object storage URL); .output is Airflow's "
                "XComArg of the task's result, for downstream tasks"
            )
        if output_path and "outlets" not in kwargs:
            kwargs["outlets"] = [asset_for_output(str(output_path))]
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.endpoint = endpoint
        self.method = method.upper()
        # Airflow reserves ``self.params`` (the DAG's Params) and refuses to template it, so the query
        # parameters given as ``params=`` live in ``query_params`` (the templated field).
        self.query_params = dict(params or {})
        self.json = json
        self.headers = dict(headers or {})
        self.pagination = pagination
        self.paginate = paginate
        self.max_pages = max_pages
        self.max_records = max_records
        self.output_path = output_path
        self.progress_every = progress_every
        self.max_xcom_records = max_xcom_records
        self.concurrency = concurrency
        self.fail_on_shortfall = fail_on_shortfall
        if paginate and self.method != "GET":
            raise ValueError(f"{self.task_id}: pages are fetched with GET; use paginate=False for {self.method}")

    @property
    def checkpoint_key(self) -> str:
        return "vendorauth_checkpoint"

    def execute(self, context: Context) -> Any:
        # Imported here, not at the top: the DAG processor parses this module on every DAG file that uses
        # the operator, and the hook's stack adds ~8 ms of CPU to each parse (benchmarks/import_time.py).
        from airflow_vendorauth.hooks.base import hook_for_connection
        from airflow_vendorauth.operators.output_path import check_output_path, expand_home

        with stopping.task_running(self) as clients:
            if self.output_path:
                self.output_path = expand_home(str(self.output_path))  # rendered: the task user's ~
                check_output_path(self.output_path, self.task_id)
            # closed when the execute ends, after the rotations page threads hold (stopping.task_running)
            hook = clients.enter_context(hook_for_connection(self.conn_id))
            if not self.paginate:
                single = self._single_call(hook)
                return self._record_asset_event(context, single) if self.output_path else single
            if self.output_path:
                from airflow_vendorauth.operators.streaming import stream_to_jsonl

                result = stream_to_jsonl(
                    hook,
                    self.endpoint,
                    str(self.output_path),
                    context=context,
                    log=self.log,  # type: ignore[arg-type]
                    checkpoint_key=self.checkpoint_key,
                    options=self._paging_options(),
                    progress_every=self.progress_every,
                    fail_on_shortfall=self.fail_on_shortfall,
                )
                return self._record_asset_event(context, result)
            with stopping.running_scan():  # nothing to commit: a stop ends it at once
                return self._records_for_xcom(hook)

    def on_kill(self) -> None:
        super().on_kill()
        stopping.stop_task(self)  # Airflow's SIGTERM: the scan ends now, what it wrote committed for the retry

    def _single_call(self, hook: Any) -> Any:
        response = hook.request(
            self.method, self.endpoint, params=self.query_params, json=self.json, headers=self.headers
        )
        # An empty answer (204) did its work: with output_path it gives an empty output, never a failed
        # task (a retry would send a POST again).
        records = [hook.json_body(response)] if response.content else []
        if self.output_path:
            from airflow_vendorauth.operators.output import JsonLinesSink

            sink = JsonLinesSink(str(self.output_path))
            sink.write_page(records)
            return {"path": sink.finish(), "records": len(records), "pages": 1}
        return records[0] if records else None

    def _paging_options(self) -> PagingOptions:
        from airflow_vendorauth.pagination.walk import PagingOptions

        return PagingOptions(
            params=self.query_params,
            headers=self.headers or None,
            pagination=self.pagination,
            max_pages=self.max_pages,
            max_records=self.max_records,
            concurrency=self.concurrency,
        )

    def _records_for_xcom(self, hook: Any) -> list[Any]:
        from airflow_vendorauth.operators.streaming import records_for_xcom

        return records_for_xcom(
            hook,
            self.endpoint,
            self._paging_options(),
            limit=self.max_xcom_records,
            what=f"{self.task_id}: {self.endpoint}",
            log=self.log,  # type: ignore[arg-type]
            fail_on_shortfall=self.fail_on_shortfall,
        )

    def _record_asset_event(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        """Put the output's figures on its asset event; the result for XCom, its path as the event shows
        it (no password or signature: XCom lives in the metadata database and the UI shows it)."""
        from airflow_vendorauth.lineage.asset_events import record_output

        return {**result, "path": record_output(self, context, result)["path"]}
