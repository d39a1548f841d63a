"""The bridge for existing HTTP DAGs (airflow_vendorauth/http.py): Airflow's HttpOperator and HttpSensor
with ``auth_type=vendor_auth(conn_id)`` against the sandbox, for every vendor, through ``dag.test()``;
one token per connection, shared with the vendor hooks; a 401 refreshes once and resends."""

from __future__ import annotations

import json

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.conftest import load_test_dag

pytestmark = pytest.mark.integration

VENDORS = ["kazi", "keyavi", "kayzen", "smartrecruiters", "clazar", "oauth2"]
PREFIX = {"kazi": "/kazi", "keyavi": "/keyavi/api", "kayzen": "/kayzen", "smartrecruiters": "/smartrecruiters",
          "clazar": "/clazar", "oauth2": "/oauth2-api"}


def http_connections(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    for vendor in VENDORS:
        conn = {"conn_type": "http", "host": sandbox.url + PREFIX[vendor]}
        monkeypatch.setenv(f"AIRFLOW_CONN_HTTP_{vendor.upper()}", json.dumps(conn))


def test_http_operator_and_sensor_call_every_vendor_with_a_managed_token(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_connections(monkeypatch, vendor_sandbox)
    run = load_test_dag("http_bridge", monkeypatch).test()
    assert run.state == "success"
    stats = vendor_sandbox.stats()
    for vendor in VENDORS:
        assert stats[vendor]["api_requests"] >= 2, vendor  # the sensor's poke and the operator's call
        assert stats[vendor]["token_requests"] == 1, vendor  # one token, from the connection's cache
        assert stats[vendor].get("status_401", 0) == 0


def test_a_401_refreshes_the_token_once_and_resends(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_vendorauth.hooks.kazi import KaziHook
    from airflow_vendorauth.http import vendor_auth

    http_connections(monkeypatch, vendor_sandbox)
    hook = HttpHook(method="GET", http_conn_id="http_kazi", auth_type=vendor_auth("kazi_default"))
    assert hook.run("tagging/v2/expectations").status_code == 200
    KaziHook("kazi_default").request("GET", "/tagging/v2/expectations")  # the vendor hook shares the token
    assert vendor_sandbox.token_requests("kazi") == 1
    vendor_sandbox.revoke("kazi")
    answer = hook.run("tagging/v2/expectations")
    assert answer.status_code == 200 and [r.status_code for r in answer.history] == [401]
    assert vendor_sandbox.token_requests("kazi") == 2
    assert vendor_sandbox.stats()["kazi"]["status_401"] == 1


def test_a_missing_role_is_not_retried_in_a_loop(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_vendorauth.http import vendor_auth
    from airflow_vendorauth.sandbox.identity import KAZI_NO_ROLE_CLIENT

    http_connections(monkeypatch, vendor_sandbox)
    conn = json.loads(sandbox_connections["AIRFLOW_CONN_KAZI_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_KAZI_NOROLE", json.dumps({**conn, "login": KAZI_NO_ROLE_CLIENT}))
    hook = HttpHook(method="GET", http_conn_id="http_kazi", auth_type=vendor_auth("kazi_norole"))
    with pytest.raises(Exception, match="401"):
        hook.run("tagging/v2/expectations")
    assert vendor_sandbox.stats()["kazi"]["status_401"] == 2  # the call and its one resend, no more
