"""KaziScanOperator: submit a job or talent scan, wait for it, collect its results.

Waiting happens either in the triggerer (``deferrable=True``: the worker slot is freed) or by polling.
Either way the scan id is kept in Airflow's ``task_state_store`` (``ResumableJobMixin``), so a retried
task reconnects to the scan it already submitted instead of submitting it twice, and the results are
written with checkpoints that describe the file (operators/output.py, operators/checkpoints.py), so a task
killed while collecting resumes where it stopped, and a retry without the file starts the collection over.

The default paths follow the sandbox's model of Kazi's Tagging API v2 (submit
``POST /tagging/v2/{kind}-scans`` with ``{"jobs": [...]}`` or ``{"candidates": [...]}``, poll
``GET .../{scan_id}``, page ``GET .../{scan_id}/results``); every path is a parameter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pendulum
from airflow.sdk import BaseOperator

from airflow_vendorauth import stopping
from airflow_vendorauth.compat import ResumableJobMixin, conf
from airflow_vendorauth.exceptions import ScanStopped
from airflow_vendorauth.lineage import OpenLineageMethods
from airflow_vendorauth.operators.api import asset_for_output
from airflow_vendorauth.vendors.kazi import scan_outcome

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_vendorauth.hooks.kazi import KaziHook

ScanType = Literal["job", "talent"]
ITEMS_FIELD = {"job": "jobs", "talent": "candidates"}


class KaziScanError(RuntimeError):
    """The scan failed or timed out at Kazi."""


class KaziScanOperator(OpenLineageMethods, ResumableJobMixin, BaseOperator):
    """Run a Kazi job or talent scan over ``items`` (or the JSON Lines file ``input_path``).

    :param scan_type: "job" or "talent".
    :param input_path: a JSON Lines file of the items to scan (e.g. an upstream VendorApiOperator's
        output); templated. ``items`` gives them inline instead.
    :param output_path: JSON Lines file for the results; templated (a leading ``~`` is the task user's
        home). Without it, XCom gets the results.
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between status checks. ``scan_timeout``: give up after this long.
    :param fail_on_shortfall: when Kazi announced more results than its pages held, fail the task naming
        both numbers (the default), to XCom as to ``output_path``; False logs a warning and keeps them.
    """

    template_fields: Sequence[str] = ("conn_id", "input_path", "items", "output_path")
    external_id_key = "kazi_scan_id"

    def __init__(
        self,
        *,
        scan_type: ScanType,
        conn_id: str = "kazi_default",
        input_path: str | None = None,
        items: list[dict[str, Any]] | None = None,
        output_path: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        scan_timeout: timedelta = timedelta(hours=2),
        submit_endpoint: str = "/tagging/v2/{kind}-scans",
        status_endpoint: str = "/tagging/v2/{kind}-scans/{scan_id}",
        results_endpoint: str = "/tagging/v2/{kind}-scans/{scan_id}/results",
        max_xcom_records: int = 1000,
        fail_on_shortfall: bool = True,
        **kwargs: Any,
    ) -> None:
        if scan_type not in ITEMS_FIELD:
            raise ValueError(f"scan_type must be 'job' or 'talent', not {scan_type!r}")
        if (input_path is None) == (items is None):
            raise ValueError("give exactly one of input_path (a JSON Lines file) or items (a list)")
        if "output" in kwargs:
            raise TypeError(
                f"{type(self).__name__} takes output_path= (a file or object storage URL); .output is Airflow's "
                "XComArg of the task's result, for downstream tasks"
            )
        if output_path and "outlets" not in kwargs:
            kwargs["outlets"] = [asset_for_output(str(output_path))]
        super().__init__(**kwargs)
        self.scan_type = scan_type
        self.conn_id = conn_id
        self.input_path = input_path
        self.items = items
        self.output_path = output_path
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.scan_timeout = scan_timeout
        self.submit_endpoint = submit_endpoint
        self.status_endpoint = status_endpoint
        self.results_endpoint = results_endpoint
        self.max_xcom_records = max_xcom_records
        self.fail_on_shortfall = fail_on_shortfall
        self._results: dict[Any, Any] = {}
        self._hook_of_this_try: KaziHook | None = None

    # ---- helpers ---------------------------------------------------------------------------------------

    def _hook(self) -> KaziHook:
        """One hook (one connection read, one pooled client) for the whole try, closed when it ends."""
        if self._hook_of_this_try is None:
            from airflow_vendorauth.hooks.kazi import KaziHook

            self._hook_of_this_try = KaziHook(self.conn_id)
        return self._hook_of_this_try

    def _end_of_try(self) -> None:
        if self._hook_of_this_try is not None:
            self._hook_of_this_try.close()
            self._hook_of_this_try = None

    def _endpoint(self, template: str, scan_id: Any = "") -> str:
        return template.format(kind=self.scan_type, scan_id=scan_id)

    def _load_items(self) -> list[dict[str, Any]]:
        if self.items is not None:
            return list(self.items)
        from airflow_vendorauth.operators.output_path import expand_home

        path = Path(expand_home(str(self.input_path)))
        if not path.exists():
            raise FileNotFoundError(
                f"{self.task_id}: input_path {path} does not exist (did the upstream task write it?)"
            )
        with path.open() as lines:
            return [json.loads(line) for line in lines if line.strip()]

    # ---- ResumableJobMixin --------------------------------------------------------------------------------

    def submit_job(self, context: Context) -> str:
        if stopping.stop_asked():  # told to stop while Airflow prepared the task: submit nothing
            raise ScanStopped(f"the task was told to stop (SIGTERM) before its Kazi {self.scan_type} scan was submitted")
        items = self._load_items()
        hook = self._hook()
        response = hook.request("POST", self._endpoint(self.submit_endpoint), json={ITEMS_FIELD[self.scan_type]: items})
        scan_id = str(hook.json_body(response, "id"))
        self.log.info("Submitted Kazi %s scan %s over %d items", self.scan_type, scan_id, len(items))
        return scan_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        hook = self._hook()
        return str(hook.json_body(hook.request("GET", self._endpoint(self.status_endpoint, external_id)), "status"))

    def is_job_active(self, status: str) -> bool:
        return scan_outcome(status) == "running"

    def is_job_succeeded(self, status: str) -> bool:
        return scan_outcome(status) == "succeeded"

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        deadline = time.monotonic() + self.scan_timeout.total_seconds()
        while True:
            status = self.get_job_status(external_id, context)
            outcome = scan_outcome(status)
            if outcome == "succeeded":
                break
            if outcome == "failed":
                raise KaziScanError(f"Kazi {self.scan_type} scan {external_id} ended with status {status!r}")
            if time.monotonic() >= deadline:
                raise KaziScanError(f"Kazi {self.scan_type} scan {external_id} still {status} after {self.scan_timeout}")
            if stopping.wait(self.poll_interval):
                kept = context.get("task_state_store") is not None and getattr(self, "durable", False)
                raise ScanStopped(
                    f"the task was told to stop (SIGTERM) while Kazi {self.scan_type} scan {external_id} ran: "
                    "the scan runs on at Kazi, and "
                    + (
                        "a retry reconnects to it (its id is in task_state_store)"
                        if kept
                        else "a retry submits a new one (no task_state_store to keep its id: Airflow 3.3+, "
                        "durable=True)"
                    )
                )
        # On a reconnect the mixin returns what this returns, on a fresh submit it calls
        # get_job_result next: collect here once, and let get_job_result serve the memo.
        return self.get_job_result(external_id, context)

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if external_id not in self._results:
            result = self._collect_results(external_id, context)
            if self.output_path:
                from airflow_vendorauth.lineage.asset_events import record_output

                result = {**result, "path": record_output(self, context, result)["path"]}  # XCom: no secret
            self._results[external_id] = result
        return self._results[external_id]

    @property
    def lineage_endpoint(self) -> str:
        """Lineage names the scans' collection as the API source: a scan's own URL (with its id) would be
        a new dataset on every run."""
        return self._endpoint(self.submit_endpoint)

    def _collect_results(self, external_id: Any, context: Context) -> Any:
        endpoint = self._endpoint(self.results_endpoint, external_id)
        hook = self._hook()
        if self.output_path:
            from airflow_vendorauth.operators.streaming import stream_to_jsonl

            result = stream_to_jsonl(
                hook,
                endpoint,
                str(self.output_path),
                context=context,
                log=self.log,  # type: ignore[arg-type]
                checkpoint_key=f"kazi_results_checkpoint:{external_id}",
                fail_on_shortfall=self.fail_on_shortfall,
            )
            return {**result, "scan_id": external_id}
        from airflow_vendorauth.operators.streaming import records_for_xcom
        from airflow_vendorauth.pagination.walk import PagingOptions

        with stopping.running_scan():  # nothing to commit: a stop ends it at once
            return records_for_xcom(
                hook,
                endpoint,
                PagingOptions(),
                limit=self.max_xcom_records,
                what=f"{self.task_id}: {endpoint}",
                log=self.log,  # type: ignore[arg-type]
                fail_on_shortfall=self.fail_on_shortfall,
            )

    # ---- execution ------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        with stopping.task_running(self) as clients:
            clients.callback(self._end_of_try)  # after the rotations page threads hold (stopping.task_running)
            return self._execute(context)

    def _execute(self, context: Context) -> Any:
        if self.output_path:  # before a scan is submitted: a scan whose results cannot be written is wasted
            from airflow_vendorauth.operators.output_path import check_output_path, expand_home

            self.output_path = expand_home(str(self.output_path))  # rendered: the task user's ~
            check_output_path(self.output_path, self.task_id)
        if not self.deferrable:
            return self.execute_resumable(context)
        store = context.get("task_state_store")
        scan_id = store.get(self.external_id_key) if store is not None else None
        if scan_id:
            status = self.get_job_status(scan_id, context)
            if self.is_job_succeeded(status):
                self.log.info("Kazi scan %s already succeeded: collecting its results", scan_id)
                return self.get_job_result(scan_id, context)
            if not self.is_job_active(status):
                scan_id = None
            else:
                self.log.info("Reconnecting to Kazi scan %s (%s)", scan_id, status)
        if not scan_id:
            scan_id = self.submit_job(context)
            if store is not None:
                store.set(self.external_id_key, scan_id)
        from airflow_vendorauth.triggers.kazi_scan import KaziScanTrigger  # the DAG processor never needs it

        self.defer(
            trigger=KaziScanTrigger(
                conn_id=self.conn_id,
                scan_id=str(scan_id),
                status_endpoint=self._endpoint(self.status_endpoint, scan_id),
                poll_interval=self.poll_interval,
                deadline=pendulum.now("UTC").add(seconds=self.scan_timeout.total_seconds()).isoformat(),
            ),
            method_name="execute_complete",
        )

    def on_kill(self) -> None:
        super().on_kill()
        stopping.stop_task(self)  # Airflow's SIGTERM: the wait or the results' scan ends now, what it wrote committed

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if event.get("status") != "success":
            raise KaziScanError(event.get("message", f"Kazi scan {event.get('scan_id')} failed"))
        with stopping.task_running(self) as clients:
            clients.callback(self._end_of_try)
            if self.output_path:  # a new instance after the deferral: its rendered path, ~ expanded again
                from airflow_vendorauth.operators.output_path import expand_home

                self.output_path = expand_home(str(self.output_path))
            return self.get_job_result(event["scan_id"], context)
