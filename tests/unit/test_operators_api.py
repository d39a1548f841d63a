"""VendorApiOperator (operators/api.py) as a DAG author writes it: no concurrency argument means
``concurrency="auto"``, so pages are fetched ahead where the API announces its total."""

from __future__ import annotations

import httpx
import pytest

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.pagination import PageNumberPagination
from tests.unit.fakes import ThrottlingApi, hook_for, set_connection


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
