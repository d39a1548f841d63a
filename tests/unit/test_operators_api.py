"""VendorApiOperator (operators/api.py) as a DAG author writes it: no concurrency argument means
``concurrency="auto"``, so pages are fetched ahead where the API announces its total."""

from __future__ import annotations

import httpx
import pytest

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.pagination import PageNumberPagination
from tests.unit.fakes import ThrottlingApi, hook_for, is_token_request, set_connection


def run_operator(monkeypatch: pytest.MonkeyPatch, api: ThrottlingApi, **arguments: object) -> list[int]:
    set_connection(monkeypatch, "clazar")  # a ceiling of 4 requests at once
    hook = hook_for("clazar", transport=httpx.MockTransport(api))
    monkeypatch.setattr("airflow_vendorauth.hooks.base.hook_for_connection", lambda conn_id: hook)
    operator = VendorApiOperator(
        task_id="items",
        conn_id="clazar",
        endpoint="/items",
        pagination=PageNumberPagination(page_size=100, records_path="items", total_path="total"),
        max_xcom_records=10_000,
        **arguments,  # type: ignore[arg-type]
    )
    return operator.execute({})  # type: ignore[no-any-return]


def test_by_default_pages_are_fetched_ahead_and_records_stay_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    api = ThrottlingApi(allowed=100, total=2_000)
    assert VendorApiOperator(task_id="t", conn_id="c", endpoint="/e").concurrency == "auto"
    assert run_operator(monkeypatch, api) == list(range(2_000))
    assert 1 < api.peak <= 4  # more than one page at once, never past the vendor's ceiling


def test_concurrency_1_pages_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    api = ThrottlingApi(allowed=100, total=2_000)
    assert run_operator(monkeypatch, api, concurrency=1) == list(range(2_000))
    assert api.peak == 1


def test_a_single_call_with_an_empty_answer_and_an_output_path_succeeds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """A POST answered 204 No Content has done its work: the task must not fail after it (a retry would
    send the POST again). The output holds no record, and the asset event says so."""
    from pathlib import Path
    from types import SimpleNamespace

    calls: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        if is_token_request(request):
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        calls.append(request.method)
        return httpx.Response(204)

    set_connection(monkeypatch, "clazar")
    hook = hook_for("clazar", transport=httpx.MockTransport(api))
    monkeypatch.setattr("airflow_vendorauth.hooks.base.hook_for_connection", lambda conn_id: hook)
    output = Path(str(tmp_path)) / "answer.jsonl"
    operator = VendorApiOperator(
        task_id="submit", conn_id="clazar", endpoint="/submit", method="POST", paginate=False,
        json={"a": 1}, output_path=str(output),
    )
    events: dict[str, SimpleNamespace] = {}

    class Events:
        def __getitem__(self, asset: object) -> SimpleNamespace:
            return events.setdefault(getattr(asset, "uri", ""), SimpleNamespace())

    result = operator.execute({"outlet_events": Events()})  # type: ignore[arg-type]
    assert calls == ["POST"]
    assert result == {"path": str(output), "records": 0, "pages": 1}
    assert output.read_text() == ""
    (event,) = events.values()
    assert event.extra["records"] == 0 and event.extra["path"] == str(output)
