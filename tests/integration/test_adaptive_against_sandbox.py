"""concurrency="auto" against the real sandbox modelling a SaaS API that allows 16 requests at once (40 ms
each, 429 with Retry-After past 16): the generic type's default ceiling lets auto reach the API's limit,
a higher ``max_concurrency`` costs one burst of refusals, never a lost or repeated record."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection

pytestmark = pytest.mark.integration

RECORDS = 20_000


def limited_api(sandbox: Sandbox, allowed: int, latency_ms: float = 40) -> None:
    sandbox.configure(sizes={"oauth2.items": RECORDS})
    sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=latency_ms, max_in_flight=allowed)


def generic_hook(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, **extra: object) -> OAuth2Hook:
    conn = oauth2_connection(sandbox.url, **extra)
    conn["extra"]["pagination"]["page_size"] = 100
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    return OAuth2Hook()


def test_the_sandbox_refuses_requests_past_its_concurrency_limit(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited_api(vendor_sandbox, allowed=16, latency_ms=500)
    token = generic_hook(vendor_sandbox, monkeypatch).get_token().access_token
    with httpx.Client(base_url=f"{vendor_sandbox.url}/oauth2-api", headers={"Authorization": f"Bearer {token}"}) as client:
        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(lambda _: client.get("/items", params={"per_page": 1}).status_code, range(20)))
    assert sorted(statuses) == [200] * 16 + [429] * 4
    [rule] = vendor_sandbox.faults()
    assert rule["peak_in_flight"] == 16 and rule["in_flight"] == 0


def test_auto_reaches_an_api_that_allows_16_at_once_with_the_default_ceiling(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited_api(vendor_sandbox, allowed=16)
    records = list(generic_hook(vendor_sandbox, monkeypatch).paginate("/items"))
    assert [r["id"] for r in records] == [f"ite-{i:06d}" for i in range(RECORDS)]  # every one, once, in order
    [rule] = vendor_sandbox.faults()
    assert rule["peak_in_flight"] == 16  # the former ceiling of 4 (and 8) never got there
    assert vendor_sandbox.stats()["oauth2"].get("status_429", 0) == 0  # and never past it


def test_a_ceiling_above_the_apis_limit_costs_one_burst_of_refusals(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited_api(vendor_sandbox, allowed=16)
    hook = generic_hook(vendor_sandbox, monkeypatch, max_concurrency=32)
    records = list(hook.paginate("/items"))
    assert [r["id"] for r in records] == [f"ite-{i:06d}" for i in range(RECORDS)]
    refused = vendor_sandbox.stats()["oauth2"].get("status_429", 0)
    assert refused <= 16  # 32 in flight once, 16 refused, then it holds at what the API allows
    assert vendor_sandbox.faults()[0]["peak_in_flight"] == 16


def test_a_ceiling_far_above_the_apis_limit_never_fails_a_scan(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 pages at once against an API taking 4 (its 429s say only Retry-After: 1). Each 429 blocks the
    credential (the shared quota's rule), so the whole crowd of waiting pages used to return at the block's
    end in lock step: 28 refused again, the block extended, until a page ran out of tries and the scan
    failed (2 scans of 3 in one process, ``benchmarks/ceiling.py``). Waiters now return spread over
    ``BLOCK_SPREAD_SECONDS``. Three scans in one process, as the benchmark runs them."""
    limited_api(vendor_sandbox, allowed=4)
    for scan in range(3):
        hook = generic_hook(vendor_sandbox, monkeypatch, max_concurrency=32)
        try:
            records = list(hook.paginate("/items"))
        finally:
            hook.close()
        assert [r["id"] for r in records] == [f"ite-{i:06d}" for i in range(RECORDS)], f"scan {scan}"
    assert vendor_sandbox.faults()[0]["peak_in_flight"] == 4
