"""What moved between Airflow 3.1, 3.2 and 3.3, imported once, here.

Airflow 3.3 brought ``task_state_store`` and ``ResumableJobMixin`` (work that survives a task retry) and
exported ``conf`` and ``BaseSensorOperator`` from ``airflow.sdk``. On 3.1 and 3.2 the same names come from
where those releases keep them, and scans run without resume: :class:`ResumableJobMixin` below submits,
waits and collects in one try, and says once in the log that a retry would start over.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_vendorauth.auth.warn_once import warn_once

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1, 3.2
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]

try:
    from airflow.sdk import BaseSensorOperator
except ImportError:  # Airflow 3.1, 3.2
    from airflow.sdk.bases.sensor import BaseSensorOperator  # type: ignore[no-redef]

if TYPE_CHECKING:
    from airflow.sdk import ResumableJobMixin

    HAS_TASK_STATE_STORE = True
else:
    try:
        from airflow.sdk import ResumableJobMixin

        HAS_TASK_STATE_STORE = True
    except ImportError:  # Airflow 3.1, 3.2: no task_state_store to keep a job's id across tries
        HAS_TASK_STATE_STORE = False

        class ResumableJobMixin:
            """Airflow 3.3's mixin, minus resuming: submit, wait and collect within one try."""

            external_id_key = "remote_job_id"
            log: logging.Logger

            def execute_resumable(self, context: Any) -> Any:
                warn_once(
                    self.log,
                    "no-task-state-store",
                    "This Airflow has no task_state_store (Airflow 3.3+): %s runs without resume, so a retried "
                    "try submits its job again and collects its results from the first page",
                    type(self).__name__,
                )
                external_id = self.submit_job(context)  # type: ignore[attr-defined]
                self.poll_until_complete(external_id, context)  # type: ignore[attr-defined]
                return self.get_job_result(external_id, context)  # type: ignore[attr-defined]




async def aget_connection(conn_id: str) -> Any:
    """``BaseHook.aget_connection``, which Airflow 3.1 serves only where a supervisor runs (a task, the
    triggerer); elsewhere (a script, a test) the connection is read in a thread instead."""
    try:
        return await BaseHook.aget_connection(conn_id)
    except ImportError:  # Airflow 3.1 outside a supervised process: no SUPERVISOR_COMMS to ask
        import asyncio

        return await asyncio.to_thread(BaseHook.get_connection, conn_id)


__all__ = ["HAS_TASK_STATE_STORE", "BaseSensorOperator", "ResumableJobMixin", "aget_connection", "conf"]
