"""Token behaviour of every hook: reuse, proactive refresh, single flight, 401 refresh, retries,
fail-fast on refused credentials, masking. Parametrised over all vendors (and both Keyavi modes)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pendulum
import pytest

from airflow_vendorauth.exceptions import InvalidTokenResponseError, TokenRequestError, VendorApiError
from airflow_vendorauth.retry import RetryPolicy
from tests.unit.fakes import ALL, SECRET, VENDOR_OF, FakeVendor, hook_for, set_connection

FAST = RetryPolicy(max_attempts=4, initial_wait_seconds=0.01, max_wait_seconds=0.05, retry_after_cap_seconds=0.3)


def fake_and_hook(monkeypatch: pytest.MonkeyPatch, name: str, **fake_kwargs: object) -> tuple[FakeVendor, object]:
    set_connection(monkeypatch, name)
    fake = FakeVendor(vendor=VENDOR_OF[name], **fake_kwargs)  # type: ignore[arg-type]
    return fake, hook_for(name, transport=fake.transport(), async_transport=fake.async_transport(), retry_policy=FAST)


@pytest.mark.parametrize("name", ALL)
def test_a_valid_token_serves_every_call_and_every_hook_instance(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)
    for _ in range(5):
        hook.request("GET", "/a")  # type: ignore[attr-defined]
    other = hook_for(name, transport=fake.transport())
    other.request("GET", "/b")
    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 6


@pytest.mark.parametrize("name", ALL)
def test_another_secret_is_another_credential(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)
    hook.get_token()  # type: ignore[attr-defined]
    set_connection(monkeypatch, name, password="another-secret-value")
    hook_for(name, transport=fake.transport()).get_token()
    assert len(fake.token_requests) == 2


@pytest.mark.parametrize("name", ALL)
def test_token_is_refreshed_before_it_expires(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, hook = fake_and_hook(monkeypatch, name, lifetime=1799)
    first = hook.get_token()  # type: ignore[attr-defined]
    with pendulum.travel_to(first.refresh_at.subtract(seconds=1), freeze=True):
        assert hook.get_token().access_token == first.access_token  # type: ignore[attr-defined]
    with pendulum.travel_to(first.refresh_at.add(seconds=1), freeze=True):
        second = hook.get_token()  # type: ignore[attr-defined]
        assert second.access_token != first.access_token
        # the refresh happens while the old token still had time left: no call leaves with a dying token
        assert first.seconds_left() >= 170
    assert len(fake.token_requests) == 2


@pytest.mark.parametrize("name", ALL)
def test_sixteen_threads_missing_the_token_cause_one_request(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, _ = fake_and_hook(monkeypatch, name, token_delay=0.2)
    barrier = threading.Barrier(16)
    tokens: list[str] = []

    def work() -> None:
        hook = hook_for(name, transport=fake.transport())
        barrier.wait()
        tokens.append(hook.get_token().access_token)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake.token_requests) == 1
    assert set(tokens) == {fake.issued[0]}


@pytest.mark.parametrize("name", ALL)
async def test_sixteen_asyncio_tasks_missing_the_token_cause_one_request(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)
    tokens = await asyncio.gather(*(hook.aget_token() for _ in range(16)))  # type: ignore[attr-defined]
    assert len(fake.token_requests) == 1
    assert {t.access_token for t in tokens} == {fake.issued[0]}


@pytest.mark.parametrize("name", ALL)
def test_401_drops_the_token_refreshes_and_resends_once(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)

    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {fake.issued[0]}":
            return httpx.Response(401, json={"message": "token revoked"})
        return httpx.Response(200, json={"ok": True})

    fake.api = api
    assert hook.request("GET", "/a").json() == {"ok": True}  # type: ignore[attr-defined]
    assert len(fake.token_requests) == 2
    assert len(fake.api_requests) == 2


@pytest.mark.parametrize("name", ALL)
def test_a_second_401_raises_instead_of_looping(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)
    fake.api = lambda request: httpx.Response(401, json={"statusCode": 401, "message": "Access denied"})
    with pytest.raises(VendorApiError, match="HTTP 401") as caught:
        hook.request("GET", "/a")  # type: ignore[attr-defined]
    assert caught.value.status == 401
    assert "fresh token was refused too" in str(caught.value)
    assert len(fake.token_requests) == 2
    assert len(fake.api_requests) == 2


@pytest.mark.parametrize("name", ALL)
async def test_async_request_refreshes_on_401_like_the_sync_one(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)
    fake.api = lambda r: httpx.Response(401 if r.headers["Authorization"].endswith(fake.issued[0]) else 200, json={})
    response = await hook.arequest("GET", "/a")  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert len(fake.token_requests) == 2


def test_sixteen_threads_seeing_one_revoked_token_cause_one_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, hook = fake_and_hook(monkeypatch, "smartrecruiters", token_delay=0.05)
    hook.get_token()  # type: ignore[attr-defined]
    revoked = fake.issued[0]
    barrier = threading.Barrier(16)
    fake.api = lambda r: httpx.Response(401 if r.headers["Authorization"].endswith(revoked) else 200, json={})

    def work() -> None:
        barrier.wait()
        hook.request("GET", "/a")  # type: ignore[attr-defined]

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake.token_requests) == 2


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_api_statuses_are_retried(monkeypatch: pytest.MonkeyPatch, name: str, status: int) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)
    answers = [
        httpx.Response(status, headers={"Retry-After": "0"}),
        httpx.Response(status),
        httpx.Response(200, json={"n": 1}),
    ]
    fake.api = lambda r: answers.pop(0)
    assert hook.request("GET", "/a").json() == {"n": 1}  # type: ignore[attr-defined]
    assert len(fake.api_requests) == 3
    assert hook.api_retries == 2  # type: ignore[attr-defined]


def test_retry_after_is_honoured_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    fake, hook = fake_and_hook(monkeypatch, "clazar")
    answers = [httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200, json={})]
    fake.api = lambda r: answers.pop(0)
    started = time.monotonic()
    hook.request("GET", "/a")  # type: ignore[attr-defined]
    assert 0.25 <= time.monotonic() - started < 2  # the policy caps Retry-After at 0.3 s, not 3600


def test_connection_errors_and_timeouts_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, hook = fake_and_hook(monkeypatch, "kayzen")
    failures: list[Exception] = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]

    def api(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, json={})

    fake.api = api
    hook.request("GET", "/a")  # type: ignore[attr-defined]
    assert len(fake.api_requests) == 3


def test_retries_are_bounded_and_the_error_names_the_last_status(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, hook = fake_and_hook(monkeypatch, "kazi")
    fake.api = lambda r: httpx.Response(503, text="upstream down")
    with pytest.raises(VendorApiError, match="HTTP 503") as caught:
        hook.request("GET", "/a")  # type: ignore[attr-defined]
    assert len(fake.api_requests) == FAST.max_attempts
    assert "Kazi" in str(caught.value)


def test_post_is_not_retried_after_it_may_have_reached_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, hook = fake_and_hook(monkeypatch, "kazi")
    fake.api = lambda r: httpx.Response(503)
    with pytest.raises(VendorApiError):
        hook.request("POST", "/scans", json={})  # type: ignore[attr-defined]
    assert len(fake.api_requests) == 1

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    fake.api = timeout
    with pytest.raises(VendorApiError):
        hook.request("POST", "/scans", json={})  # type: ignore[attr-defined]
    assert len(fake.api_requests) == 2


def test_post_is_retried_when_it_never_left_was_refused_with_429_or_the_caller_opts_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, hook = fake_and_hook(monkeypatch, "kazi")
    failures: list[Exception] = [httpx.ConnectError("refused")]

    def api(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return httpx.Response(201, json={"id": 1})

    fake.api = api
    assert hook.request("POST", "/scans", json={}).status_code == 201  # type: ignore[attr-defined]
    answers = [httpx.Response(503), httpx.Response(201, json={})]
    fake.api = lambda r: answers.pop(0)
    assert hook.request("POST", "/scans", json={}, retry_unsafe=True).status_code == 201  # type: ignore[attr-defined]
    refused = [httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(201, json={})]
    fake.api = lambda r: refused.pop(0)
    assert hook.request("POST", "/scans", json={}).status_code == 201  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("status", [400, 401, 403])
def test_refused_credentials_fail_at_once_with_the_vendors_words(
    monkeypatch: pytest.MonkeyPatch, name: str, status: int
) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)
    fake.token_responses = [
        httpx.Response(
            status,
            json={
                "error": "invalid_client",
                "error_description": f"AADSTS7000215: Invalid client secret provided. ({SECRET})",
                "error_codes": [7000215],
            },
        )
    ]
    with pytest.raises(TokenRequestError) as caught:
        hook.get_token()  # type: ignore[attr-defined]
    message = str(caught.value)
    assert len(fake.token_requests) == 1
    assert "invalid_client" in message and "AADSTS7000215" in message
    assert f"HTTP {status}" in message and repr(hook.conn_id) in message  # type: ignore[attr-defined]
    assert SECRET not in message
    assert "client secret" in message  # the fix


def test_a_refused_credential_is_remembered_so_mapped_tasks_ask_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = fake_and_hook(monkeypatch, "keyavi")
    fake.token_responses = [httpx.Response(401, json={"error": "invalid_client", "error_codes": [7000215]})]
    for _ in range(10):
        with pytest.raises(TokenRequestError, match="invalid_client"):
            hook_for("keyavi", transport=fake.transport()).request("GET", "/a")
    assert len(fake.token_requests) == 1
    assert fake.api_requests == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_token_endpoint_transients_are_retried(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    fake, hook = fake_and_hook(monkeypatch, "kazi")
    fake.token_responses = [httpx.Response(status, headers={"Retry-After": "0"}, text="busy")]
    assert hook.get_token().access_token == fake.issued[0]  # type: ignore[attr-defined]
    assert len(fake.token_requests) == 2


def test_token_endpoint_down_past_the_budget_names_vendor_and_last_status(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, hook = fake_and_hook(monkeypatch, "kazi")
    fake.token_responses = [httpx.Response(503, text="down")] * 10
    with pytest.raises(TokenRequestError, match=r"Kazi token request .* HTTP 503"):
        hook.request("GET", "/a")  # type: ignore[attr-defined]
    assert len(fake.token_requests) == FAST.max_attempts  # not multiplied by the API's own retries


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (
            httpx.Response(200, text="<html><body>Maintenance</body></html>", headers={"content-type": "text/html"}),
            "not JSON",
        ),
        (httpx.Response(200, text=""), "not JSON"),
        (httpx.Response(200, json={"token_type": "bearer"}), "no access_token"),
        (httpx.Response(200, json={"access_token": "t-12345", "expires_in": -1}), "already expired"),
        (httpx.Response(200, json={"access_token": "t-12345", "expires_in": "eventually"}), "not a number"),
    ],
)
def test_malformed_token_answers_raise_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, answer: httpx.Response, says: str
) -> None:
    fake, hook = fake_and_hook(monkeypatch, "smartrecruiters")
    fake.token_responses = [answer] * 10
    with pytest.raises(InvalidTokenResponseError, match=says):
        hook.get_token()  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ALL)
def test_every_token_and_secret_is_registered_with_the_masker(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    masked: list[str] = []
    monkeypatch.setattr("airflow_vendorauth.hooks.masking.mask_secret", lambda value, name=None: masked.append(value))
    _, hook = fake_and_hook(monkeypatch, name)
    token = hook.get_token()  # type: ignore[attr-defined]
    assert token.access_token in masked
    assert SECRET in masked


@pytest.mark.parametrize("name", ALL)
def test_reprs_show_no_secret(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _, hook = fake_and_hook(monkeypatch, name)
    token = hook.get_token()  # type: ignore[attr-defined]
    shown = " ".join(
        repr(x)
        for x in (
            hook,
            token,
            hook.settings,  # type: ignore[attr-defined]
            hook.client,  # type: ignore[attr-defined]
            hook.client.provider,  # type: ignore[attr-defined]
            hook.client.provider.endpoint,  # type: ignore[attr-defined]
            hook.client.provider.endpoint._current,  # type: ignore[attr-defined]
            hook.client._auth,  # type: ignore[attr-defined]
        )
    ) + str(token)
    assert token.access_token not in shown
    assert SECRET not in shown


@pytest.mark.parametrize("name", ["kazi", "keyavi"])
def test_credentials_never_follow_a_redirect_to_another_host(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.host == "elsewhere.example":
            return httpx.Response(200, json={"moved": True})
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/file"})

    fake.api = api
    assert hook.request("GET", "/a").json() == {"moved": True}  # type: ignore[attr-defined]
    foreign = fake.api_requests[-1]
    assert foreign.url.host == "elsewhere.example"
    for header in ("Authorization", "Ocp-Apim-Subscription-Key", "x-api-caller-id"):
        assert header not in foreign.headers


@pytest.mark.parametrize("name", ALL)
def test_test_connection_reports_success_or_the_vendors_reason(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake, hook = fake_and_hook(monkeypatch, name)
    ok, message = hook.test_connection()  # type: ignore[attr-defined]
    assert ok and "token obtained" in message
    fake.token_responses = [httpx.Response(401, json={"error": "invalid_client", "error_description": "bad secret"})]
    ok, message = hook_for(name, transport=fake.transport()).test_connection()
    assert not ok and "invalid_client: bad secret" in message


def test_one_pooled_client_serves_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    _, hook = fake_and_hook(monkeypatch, "clazar")
    client = hook.get_client()  # type: ignore[attr-defined]
    hook.request("GET", "/a")  # type: ignore[attr-defined]
    assert hook.get_client() is client  # type: ignore[attr-defined]
    assert client.timeout.read == 30.0
