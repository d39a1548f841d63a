"""The bridge's 401 resend keeps credentials at home as the first send does (issue 31, item 7): the resend
went through the requests adapter, so no response hook saw its answer, and a redirect of that answer to
another origin carried the vendor's header there (requests strips only Authorization).

Two real origins on 127.0.0.1 (tests/integration/test_http_bridge_origins.py), Airflow's HttpHook with
``vendor_auth``, tokens from the sandbox: "home" answers the first request 401 and the resend with a
redirect; "other" records what reaches it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.test_http_bridge_origins import Origin

pytestmark = pytest.mark.integration

#: The headers of each connection the other origin must never see (besides Authorization).
VENDOR_HEADERS = {"kazi_default": ["ocp-apim-subscription-key"], "keyavi_default": ["ocp-apim-subscription-key", "x-api-caller-id"]}


@pytest.fixture
def origins(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch  # type: ignore[type-arg]
) -> Iterator[tuple[Origin, Origin]]:
    def other(path: str, count: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/bounce"):
            return 302, {"Location": f"{home.url}/arrived"}, b""
        return 200, {}, b'{"where": "other"}'

    other_origin = Origin(other)

    def respond(path: str, count: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
        seen = sum(1 for r in home.seen if r["path"] == path)
        if path in ("/relocated", "/roundtrip", "/chain") and seen == 1:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b"{}"
        if path == "/relocated":
            return 307, {"Location": f"{other_origin.url}/landing"}, b""
        if path == "/roundtrip":
            return 302, {"Location": f"{other_origin.url}/bounce"}, b""
        if path == "/chain":
            return 307, {"Location": "/chain-next"}, b""  # relative: stays home
        if path == "/chain-next":
            return 307, {"Location": f"//127.0.0.1:{other_origin.server.server_address[1]}/landing"}, b""  # scheme-relative
        if path == "/arrived":
            return 401, {}, b"{}"  # came home bare
        return 200, {}, b"{}"

    home = Origin(respond)
    monkeypatch.setenv("AIRFLOW_CONN_HTTP_HOME", json.dumps({"conn_type": "http", "host": home.url}))
    yield home, other_origin
    home.close()
    other_origin.close()


def bridge(conn_id: str, method: str = "GET"):  # type: ignore[no-untyped-def]
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_vendorauth.http import vendor_auth

    return HttpHook(method=method, http_conn_id="http_home", auth_type=vendor_auth(conn_id))


def ours(headers: dict[str, str], conn_id: str) -> list[str]:
    return [name for name in headers if name.lower() in ("authorization", *VENDOR_HEADERS[conn_id])]


@pytest.mark.parametrize("conn_id", list(VENDOR_HEADERS))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_resend_after_a_401_redirected_to_another_origin_carries_nothing_of_ours(
    vendor_sandbox: Sandbox, origins: tuple[Origin, Origin], conn_id: str, method: str
) -> None:
    home, other = origins
    data = b"a body a 307 sends again" if method == "POST" else None
    answer = bridge(conn_id, method).run("relocated", data=data, extra_options={"timeout": 10})
    assert answer.status_code == 200 and answer.url.startswith(other.url)
    sent = [r for r in home.seen if r["path"] == "/relocated"]
    assert len(sent) == 2 and sent[0]["headers"]["Authorization"] != sent[1]["headers"]["Authorization"]
    assert all(name.lower() in [n.lower() for n in sent[1]["headers"]] for name in VENDOR_HEADERS[conn_id])
    assert [ours(r["headers"], conn_id) for r in other.seen] == [[]]
    if method == "POST":
        assert other.seen[0]["body"] == data  # the user's body goes where a 307 says; our credentials do not


def test_a_resend_redirected_at_home_then_away_carries_the_new_token_home_and_nothing_away(
    vendor_sandbox: Sandbox, origins: tuple[Origin, Origin]
) -> None:
    home, other = origins
    answer = bridge("kazi_default").run("chain", extra_options={"timeout": 10})
    assert answer.status_code == 200 and answer.url.startswith(other.url)
    first, resent, next_hop = (r["headers"].get("Authorization") for r in home.seen)
    assert [r["path"] for r in home.seen] == ["/chain", "/chain", "/chain-next"]
    assert resent != first and next_hop == resent  # the redirect at home goes with the new token
    assert [ours(r["headers"], "kazi_default") for r in other.seen] == [[]]
    assert vendor_sandbox.token_requests("kazi") == 2


def test_a_resend_that_goes_away_and_comes_back_bare_keeps_the_token(
    vendor_sandbox: Sandbox, origins: tuple[Origin, Origin]
) -> None:
    home, other = origins
    answer = bridge("keyavi_default").run("roundtrip", extra_options={"check_response": False, "timeout": 10})
    assert answer.status_code == 401 and answer.url == f"{home.url}/arrived"
    assert [ours(r["headers"], "keyavi_default") for r in other.seen] == [[]]
    arrived = [r for r in home.seen if r["path"] == "/arrived"]
    assert len(arrived) == 1 and ours(arrived[0]["headers"], "keyavi_default") == []  # not put back, not resent
    assert vendor_sandbox.token_requests("keyavi") == 2  # the refused token's replacement, no third for a bare 401

