"""VendorApiSensor: wait until a vendor API's answer satisfies a check (a scan done, a report ready).

Poking (``mode="poke"`` or ``"reschedule"``) calls the API with the connection's managed token; with
``deferrable=True`` (default: Airflow's ``[operators] default_deferrable``) the wait moves to the
triggerer (:class:`~airflow_vendorauth.triggers.api.VendorApiTrigger`) and frees the worker slot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_vendorauth.compat import BaseSensorOperator, conf
from airflow_vendorauth.lineage import OpenLineageMethods
from airflow_vendorauth.sensors.check import AnswerCheck

if TYPE_CHECKING:
    from airflow.sdk import Context


class VendorApiSensor(OpenLineageMethods, BaseSensorOperator):
    """Wait until ``GET endpoint`` answers what the check asks for.

    :param conn_id: a connection of one of this provider's types; the hook is chosen by its type.
    :param endpoint: appended to the connection's host path; templated.
    :param params: query parameters; templated (stored as ``query_params``: Airflow reserves ``params``).
    :param response_check: a callable taking the JSON answer and returning True when done, or its
        dotted path (``"my_dags.checks.ready"``), which a deferred wait needs.
    :param json_path: instead of ``response_check``: a dotted path into the answer (``"status"``,
        ``"data.0.state"``) and ``expected``, the value to wait for; templated.
    :param deferrable: wait in the triggerer (Airflow's ``[operators] default_deferrable`` by default).
    """

    template_fields: Sequence[str] = ("conn_id", "endpoint", "query_params", "json_path", "expected")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        conn_id: str,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        response_check: Callable[[Any], bool] | str | None = None,
        json_path: str | None = None,
        expected: Any = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        AnswerCheck(json_path, expected, response_check)  # one of the two, refused at parse time otherwise
        if deferrable and not AnswerCheck(json_path, expected, response_check).serializable:
            raise ValueError(
                f"{self.task_id}: a deferred wait rebuilds its check in the triggerer: give response_check as a "
                "dotted path ('my_dags.checks.ready'), or json_path and expected"
            )
        self.conn_id = conn_id
        self.endpoint = endpoint
        self.query_params = dict(params or {})
        self.response_check = response_check
        self.json_path = json_path
        self.expected = expected
        self.deferrable = deferrable
        self._hook: Any = None

    def _check(self) -> AnswerCheck:
        return AnswerCheck(self.json_path, self.expected, self.response_check)

    def poke(self, context: Context) -> bool:
        if self._hook is None:  # one hook (one connection read, one pooled client) per try
            from airflow_vendorauth.hooks.base import hook_for_connection

            self._hook = hook_for_connection(self.conn_id)
        body = self._hook.json_body(self._hook.request("GET", self.endpoint, params=self.query_params))
        done = self._check().passes(body)
        self.log.info("%s: %s is %s", self.endpoint, self._check().describe(), "met" if done else "not met yet")
        return done

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_vendorauth.exceptions import QuotaExhausted

        try:
            if self.poke(context):
                return None
        except QuotaExhausted as spent:  # deferred, the triggerer waits for the quota without a worker slot
            self.log.info("%s: %s; deferring, the triggerer waits for it", self.endpoint, spent)
        from airflow_vendorauth.triggers.api import VendorApiTrigger  # the DAG processor never needs it

        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
        self.defer(
            trigger=VendorApiTrigger(
                conn_id=self.conn_id,
                endpoint=self.endpoint,
                params=self.query_params,
                check=self._check().to_json(),
                poke_interval=float(self.poke_interval),
                deadline=pendulum.now("UTC").add(seconds=timeout).isoformat(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        status = event.get("status")
        if status == "success":
            self.log.info("%s: condition met after %s pokes in the triggerer", self.endpoint, event.get("pokes"))
            return
        from airflow.exceptions import AirflowSensorTimeout

        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", f"{self.endpoint}: timed out"))
        raise RuntimeError(event.get("message", f"{self.endpoint}: the wait failed"))
