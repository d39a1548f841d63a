"""An outside review of the shared quota (issue 34): each test is a defect found, failing on the code
before its fix (or marked xfail(strict=True) where the fix is larger than a review's)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_vendorauth.quota import headers
from airflow_vendorauth.quota.limiter import QuotaLimiter
from airflow_vendorauth.quota.spec import QuotaSpec, Rate
from airflow_vendorauth.quota.stores import MemoryQuotaStore, QuotaStore
from tests.quota_stores import KINDS, quota_store


def limiter(store: QuotaStore, **spec: Any) -> QuotaLimiter:
    return QuotaLimiter("k", QuotaSpec(**spec), store, vendor="Test", conn_id="c", lease_seconds=30.0)


# ---- headers: a malformed or absurd value neither crashes a call nor blocks the cluster for years --------


@pytest.mark.parametrize(
    "answer",
    [
        {"X-RateLimit-Remaining": "nan"},
        {"X-RateLimit-Remaining": "inf"},
        {"X-RateLimit-Limit": "-inf", "X-RateLimit-Remaining": "3"},
        {"RateLimit": "limit=nan, remaining=1e999, reset=1"},
        {"RateLimit-Policy": "nan;w=1"},
        {"RateLimit-Policy": "10;w=nan, 1e999;w=1"},
    ],
)
def test_a_malformed_number_in_a_quota_header_is_ignored_not_a_crash(answer: dict[str, str]) -> None:
    headers.read(answer)  # before: ValueError / OverflowError from int(nan) or int(inf), raised by the call
    limiter(MemoryQuotaStore()).observe(200, answer)


@pytest.mark.parametrize(
    "answer",
    [
        {"Retry-After": "99999999"},  # three years
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "inf"},
        {"RateLimit": "limit=10, remaining=0, reset=31536000"},  # a year
    ],
)
def test_an_absurd_wait_said_by_the_api_blocks_the_credential_a_day_at_most(answer: dict[str, str]) -> None:
    store = MemoryQuotaStore()
    limiter(store).observe(429, answer)
    decision = store.acquire("k", (), None, "x", 30.0)
    assert not decision.granted and decision.wait <= 86400.0 + 1  # before: up to forever


def test_an_x_ratelimit_reset_in_epoch_milliseconds_is_read_as_such() -> None:
    now = 1_765_000_000.0
    said = headers.read({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now * 1000) + 5000)}, now=now)
    assert said.windows[0].reset == pytest.approx(5.0)  # before: 1.76e12 s (56,000 years)


@pytest.mark.parametrize(
    ("policy", "most_in_its_window"),
    [("100;w=600", 100), ("1;w=7200", 1), ("10;w=0.5", 10), ("7;w=90", 7)],
)
def test_a_policy_of_an_odd_window_is_never_learnt_looser_than_it_is(policy: str, most_in_its_window: int) -> None:
    (rate,) = headers.read({"RateLimit-Policy": policy}).policies
    window = float(policy.split("w=")[1])
    # what the learnt rate lets through at its steady pace in the policy's window (its burst aside)
    assert window / rate.interval <= most_in_its_window + 1e-9  # before: 100;w=600 became 1/second (600)
    assert rate.interval <= window  # and not absurdly tighter: at least one request per window


# ---- every request sent takes a permit: a 401's resend and a redirect's hop too -------------------------


def _one_call_then_spent(monkeypatch: pytest.MonkeyPatch, statuses: list[int], **headers: str) -> Any:
    import httpx

    from tests.unit.fakes import FakeVendor, hook_for, set_connection

    set_connection(monkeypatch, "clazar", extra={"rate_limit": ["10/second", "2/day"], "quota_max_wait": 30})
    fake = FakeVendor("clazar")
    answers = iter(statuses)
    fake.api = lambda request: httpx.Response(next(answers), json={}, headers=headers)
    hook = hook_for("clazar", transport=fake.transport(), async_transport=fake.async_transport())
    return fake, hook


@pytest.mark.parametrize(
    ("statuses", "headers"),
    [([401, 200, 200], {}), ([302, 200, 200], {"Location": "/buyers/elsewhere"})],
    ids=["a 401 sent again with a new token", "a redirect at home"],
)
def test_a_call_that_sends_twice_spends_two_permits(
    monkeypatch: pytest.MonkeyPatch, statuses: list[int], headers: dict[str, str]
) -> None:
    from airflow_vendorauth.exceptions import QuotaExhausted

    fake, hook = _one_call_then_spent(monkeypatch, statuses, **headers)
    hook.request("GET", "/buyers")  # two requests sent: the 2/day is spent
    assert len(fake.api_requests) == 2
    with pytest.raises(QuotaExhausted, match="2/day"):
        hook.request("GET", "/buyers")  # before: sent, a third request of a 2/day quota
    assert len(fake.api_requests) == 2
    assert hook.client.limiter.store.in_flight(hook.client.limiter.key) == 0


def test_an_async_call_sent_again_after_a_401_spends_two_permits(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from airflow_vendorauth.exceptions import QuotaExhausted

    fake, hook = _one_call_then_spent(monkeypatch, [401, 200, 200])
    hook.settings  # noqa: B018 - read the connection before the loop runs

    async def calls() -> None:
        await hook.arequest("GET", "/buyers")
        with pytest.raises(QuotaExhausted, match="2/day"):
            await hook.arequest("GET", "/buyers")

    asyncio.run(calls())
    assert len(fake.api_requests) == 2
    assert hook.client.limiter.store.in_flight(hook.client.limiter.key) == 0


def test_a_request_sent_through_the_hooks_own_client_that_got_no_answer_gives_its_lease_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    import httpx

    fake, hook = _one_call_then_spent(monkeypatch, [])

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake.api = refused
    with pytest.raises(httpx.ConnectError):
        hook.get_client().get("/buyers")  # no answer: httpx runs no response hook
    fake.api_requests.clear()  # the fake keeps every request it saw; nothing else does
    gc.collect()
    limiter = hook.client.limiter
    deadline = time.monotonic() + 3.0  # given back by the renewing thread, a moment later
    while limiter.store.in_flight(limiter.key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert limiter.store.in_flight(limiter.key) == 0  # before: held (and, renewed, held for good)


def test_requests_sent_through_the_hooks_own_httpx_client_take_permits(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_vendorauth.exceptions import QuotaExhausted

    fake, hook = _one_call_then_spent(monkeypatch, [200, 200, 200])
    client = hook.get_client()  # the documented way to send what hook.request does not
    assert client.get("/buyers").status_code == 200
    assert client.get("/buyers").status_code == 200
    with pytest.raises(QuotaExhausted, match="2/day"):
        client.get("/buyers")  # before: sent, no permit taken at all
    assert len(fake.api_requests) == 2
    assert hook.client.limiter.store.in_flight(hook.client.limiter.key) == 0


def test_two_hooks_sharing_the_pooled_async_client_spend_one_permit_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from airflow_vendorauth.exceptions import QuotaExhausted
    from tests.unit.fakes import hook_for

    fake, one = _one_call_then_spent(monkeypatch, [200, 200, 200])
    other = hook_for("clazar", transport=fake.transport(), async_transport=fake.async_transport())

    async def calls() -> None:
        await one.arequest("GET", "/buyers")
        await other.arequest("GET", "/buyers")  # the pooled client one built: its hooks see other's call
        with pytest.raises(QuotaExhausted, match="2/day"):
            await other.arequest("GET", "/buyers")

    asyncio.run(calls())
    assert len(fake.api_requests) == 2


# ---- the HttpOperator bridge ------------------------------------------------------------------------------


class _Adapter:
    """A requests adapter answering with ``statuses`` (an exception class: raised, as a connection error is)."""

    def __init__(self, statuses: list[Any]) -> None:
        self.statuses, self.sent = iter(statuses), 0

    def send(self, request: Any, **_: Any) -> Any:
        import requests

        self.sent += 1
        status = next(self.statuses)
        if isinstance(status, type):
            raise status("connection reset by peer")
        response = requests.Response()
        response.status_code, response.request, response.url = status, request, request.url
        response._content, response.connection = b"{}", self
        return response

    def close(self) -> None:
        pass


def _bridge(monkeypatch: pytest.MonkeyPatch, statuses: list[Any], **extra: Any) -> tuple[Any, Any, _Adapter]:
    import requests

    from airflow_vendorauth.http import vendor_auth
    from tests.unit.fakes import set_connection

    _, hook = _one_call_then_spent(monkeypatch, [])
    set_connection(monkeypatch, "clazar", extra={"rate_limit": ["10/second", "2/day"], "quota_max_wait": 30, **extra})
    auth = vendor_auth("clazar")()
    auth._vendor_hook = hook
    session, adapter = requests.Session(), _Adapter(statuses)
    session.mount("https://", adapter)  # type: ignore[arg-type]
    return session, auth, adapter


def test_the_bridge_s_401_resend_takes_a_permit(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_vendorauth.exceptions import QuotaExhausted

    session, auth, adapter = _bridge(monkeypatch, [401, 200, 200])
    assert session.get("https://api.example.test/buyers", auth=auth).status_code == 200
    assert adapter.sent == 2  # the 401 and its resend: the 2/day is spent
    with pytest.raises(QuotaExhausted, match="2/day"):
        session.get("https://api.example.test/buyers", auth=auth)  # before: sent (the resend took no permit)
    assert adapter.sent == 2
    limiter = auth._hook.client.limiter
    assert limiter.store.in_flight(limiter.key) == 0


def test_a_bridge_request_that_never_got_an_answer_gives_its_lease_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import requests

    session, auth, _adapter = _bridge(monkeypatch, [requests.ConnectionError], max_in_flight=1)
    with pytest.raises(requests.ConnectionError):
        session.get("https://api.example.test/buyers", auth=auth)
    gc.collect()
    limiter = auth._hook.client.limiter
    deadline = time.monotonic() + 3.0  # given back by the renewing thread, a moment later
    while limiter.store.in_flight(limiter.key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert limiter.store.in_flight(limiter.key) == 0  # before: held until the lease expired (timeout + 5 s)


# ---- a permit granted to a caller that is gone is given back -------------------------------------------


class _SlowStore(MemoryQuotaStore):
    """Grants after ``delay`` (a Redis far away), or raises ``then`` once it granted (a SIGTERM's exception
    arriving just after the store answered)."""

    def __init__(self, delay: float = 0.0, then: type[BaseException] | None = None) -> None:
        super().__init__()
        self.delay, self.then = delay, then

    def acquire(self, *args: Any, **kwargs: Any) -> Any:
        import time

        time.sleep(self.delay)
        decision = super().acquire(*args, **kwargs)
        if self.then is not None:
            raise self.then("terminated")
        return decision


def test_a_trigger_cancelled_while_its_permit_is_being_granted_gives_it_back() -> None:
    import asyncio

    store = _SlowStore(delay=0.3)
    quota = limiter(store, max_in_flight=1)

    async def cancelled_then_settled() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(quota.aacquire(), 0.05)  # the triggerer cancels the trigger
        await asyncio.sleep(0.6)  # the store's answer (a grant) comes in after the cancellation

    asyncio.run(cancelled_then_settled())
    assert store.in_flight("k") == 0  # before: 1, the slot held by nobody until its lease expired


def test_a_permit_granted_after_its_event_loop_ended_is_given_back_and_not_renewed() -> None:
    """The same, when the loop ends before the store answers (a scan's fetch-ahead cancelled as
    ``asyncio.run`` returns): the loop's executor takes no more work then, and a grant nobody holds must
    not stay in flight, let alone be renewed for an hour by the lease renewer."""
    import asyncio
    import time

    from airflow_vendorauth.quota.renewal import RENEWER

    store = _SlowStore(delay=0.3)
    quota = limiter(store, max_in_flight=1)

    async def cancelled_and_gone() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(quota.aacquire(), 0.05)

    asyncio.run(cancelled_and_gone())  # returns once the store's thread has answered: the loop is gone
    time.sleep(0.2)
    assert store.in_flight("k") == 0
    assert RENEWER.held() == 0


def test_a_permit_granted_as_the_task_is_terminated_is_given_back() -> None:
    class Terminated(BaseException):
        pass

    store = _SlowStore(then=Terminated)
    with pytest.raises(Terminated):
        limiter(store, max_in_flight=1).acquire()
    assert store.in_flight("k") == 0


# ---- mutation survivors: what no test of the quota noticed ---------------------------------------------


@pytest.fixture(params=KINDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    with quota_store(request.param, tmp_path) as held:
        yield held


def test_a_lapsed_lease_frees_its_slot_for_the_next_caller(any_store: QuotaStore) -> None:
    import time

    assert any_store.acquire("k", (), 1, "dead", 0.2).granted  # a process that dies mid-request
    assert not any_store.acquire("k", (), 1, "x", 30.0).granted
    time.sleep(0.3)
    assert any_store.acquire("k", (), 1, "y", 30.0).granted  # survived: expired leases never dropped


def test_requests_at_once_learnt_below_the_declared_cap_apply(any_store: QuotaStore) -> None:
    any_store.learn_in_flight("k", 2)  # the API refused a third at once, though 8 are declared
    assert any_store.acquire("k", (), 8, "a", 30.0).granted and any_store.acquire("k", (), 8, "b", 30.0).granted
    assert any_store.acquire("k", (), 8, "c", 30.0).why == "2 at once"  # survived: the declared 8 won


def test_the_limiter_gives_a_lease_back_to_the_shared_store(any_store: QuotaStore) -> None:
    quota = limiter(any_store, max_in_flight=1)
    quota.release(quota.acquire())
    assert any_store.in_flight("k") == 0  # survived: only the fallback's copy was given back


class _Down(MemoryQuotaStore):
    """A shared store that cannot answer (Redis down)."""

    name = "down"
    errors = (ConnectionError,)

    def _update(self, key: str, change: Any) -> Any:
        raise ConnectionError("refused")


def test_the_fallback_applies_the_documented_share_of_requests_at_once() -> None:
    from airflow_vendorauth.quota.limiter import FALLBACK_SHARE

    assert FALLBACK_SHARE == 0.25
    quota = limiter(_Down(), max_in_flight=8)
    leases = [quota.acquire() for _ in range(2)]  # a quarter of 8 at once
    assert quota._decide("third").why == "2 at once"  # survived: the fallback allowed all 8
    for lease in leases:
        quota.release(lease)


def test_the_fallback_applies_the_documented_share_of_each_rate() -> None:
    quota = limiter(_Down(), rates=(Rate(40, "second"),))
    grants = [quota._decide(f"r{i}").granted for i in range(12)]
    assert grants.count(True) == 10  # a quarter of 40/second: 10/second (40 unscaled)


def test_a_store_that_cannot_answer_is_asked_again_only_after_a_pause() -> None:
    asked = []

    class Hung(_Down):
        def _update(self, key: str, change: Any) -> Any:
            asked.append(key)  # a Redis that hangs: each question costs its socket timeout
            raise ConnectionError("timed out")

    quota = limiter(Hung())
    for _ in range(5):
        quota.release(quota.acquire())
    assert len(asked) == 1  # survived: the store asked (and waited for) on every call


def test_a_lease_taken_in_the_fallback_is_given_back_there() -> None:
    from airflow_vendorauth.quota.limiter import FALLBACK

    quota = limiter(_Down(), max_in_flight=4)
    quota.release(quota.acquire())
    assert FALLBACK.in_flight("k") == 0  # survived: the fallback's slot held until its lease lapsed


def test_what_remains_said_by_the_api_lowers_every_caller_s_budget() -> None:
    store = MemoryQuotaStore()
    rate = Rate(10, "second")
    limiter(store, rates=(rate,)).observe(200, {"RateLimit": "limit=10, remaining=3, reset=1"})
    grants = [store.acquire("k", (rate,), None, f"l{i}", 30.0).granted for i in range(4)]
    assert grants == [True, True, True, False]  # 3 left in the window; survived: the correction unsent


def test_a_hook_call_s_answer_teaches_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from airflow_vendorauth.exceptions import QuotaExhausted
    from tests.unit.fakes import FakeVendor, hook_for, set_connection

    set_connection(monkeypatch, "clazar", extra={"quota_max_wait": 30})
    fake = FakeVendor("clazar")
    spent = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3600"}
    fake.api = lambda request: httpx.Response(200, json={}, headers=spent)
    hook = hook_for("clazar", transport=fake.transport())
    hook.request("GET", "/buyers")
    with pytest.raises(QuotaExhausted, match="the API's own quota"):
        hook.request("GET", "/buyers")  # survived: the hook's answer never observed
    assert len(fake.api_requests) == 1


# ---- left for the author: larger than a review's fix (xfail, strict) ------------------------------------


def test_a_declared_rate_never_lets_more_than_its_count_through_in_one_window() -> None:
    clock = [1_000.0]
    store = MemoryQuotaStore(clock=lambda: clock[0])
    rate = Rate(10, "minute")
    granted = 0
    while clock[0] < 1_060.0:  # one minute of a caller asking every 100 ms
        if store.acquire("k", (rate,), None, f"l{clock[0]}", 1.0).granted:
            granted += 1
        clock[0] += 0.1
    assert granted <= 10  # before (GCRA): 19 (10 at once, then one every 6 s)


def test_a_request_slower_than_its_lease_keeps_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import httpx

    from airflow_vendorauth.hooks import quota as hook_quota
    from tests.unit.fakes import FakeVendor, hook_for, set_connection

    monkeypatch.setattr(hook_quota, "LEASE_MARGIN_SECONDS", 0.0)
    set_connection(monkeypatch, "clazar", extra={"max_in_flight": 1, "timeout": 0.5})
    fake = FakeVendor("clazar")
    seen: list[int] = []
    holder: dict[str, Any] = {}

    def body() -> Any:
        for _ in range(4):  # each chunk well within the read timeout; the whole, twice the timeout
            time.sleep(0.25)
            yield b"{}" if _ == 3 else b" "
        seen.append(holder["limiter"].store.in_flight(holder["limiter"].key))

    fake.api = lambda request: httpx.Response(200, content=body())
    hook = hook_for("clazar", transport=fake.transport())
    holder["limiter"] = hook.client.limiter
    hook.request("GET", "/buyers")
    assert seen == [1]  # before the renewals: 0, the slot free for another process while this request still read


def test_every_policy_of_a_combined_ratelimit_header_is_read() -> None:
    said = headers.read(
        {
            "RateLimit-Policy": '"burst";q=100;w=1, "daily";q=1000;w=86400',
            "RateLimit": '"daily";r=0;t=40000, "burst";r=50;t=1',
        }
    )
    assert sorted((w.remaining, w.reset, w.limit) for w in said.windows) == [(0, 40000.0, None), (50, 1.0, None)]
    store = MemoryQuotaStore()
    limiter(store).observe(200, {"RateLimit": '"daily";r=0;t=40000, "burst";r=50;t=1'})
    assert store.acquire("k", (), None, "x", 30.0).wait > 39000  # before: the spent daily policy was lost


def test_a_429_of_a_lone_request_beside_an_hourly_quota_with_room_does_not_serialise_the_cluster() -> None:
    import time

    store = MemoryQuotaStore()
    quota = limiter(store)
    quota.release(quota.acquire())  # one request alone, answered 429 by a per-second limit the API does not announce
    quota.observe(
        429, {"Retry-After": "0.3", "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4990", "X-RateLimit-Reset": "3000"}
    )
    time.sleep(0.4)
    grants = [store.acquire("k", (), None, f"l{i}", 30.0).granted for i in range(3)]
    assert grants == [True, True, True]  # before: [True, False, False], '1 at once' learnt for a day (Redis) or for good


def test_a_request_waiting_for_a_slot_longer_than_quota_max_wait_fails_naming_it() -> None:
    import time

    from airflow_vendorauth.exceptions import QuotaExhausted

    store = MemoryQuotaStore()
    assert store.acquire("k", (), 1, "stuck", 30.0).granted  # a slow request elsewhere holds the only slot
    started = time.monotonic()
    with pytest.raises(QuotaExhausted, match="1 at once"):
        limiter(store, max_in_flight=1, max_wait=0.5).acquire()  # before: waited 30 s, 0.01 s at a time, silently
    assert time.monotonic() - started < 2


def test_no_api_permit_is_held_while_the_call_waits_for_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token fetched inside the call's auth flow (first call, expiry, a 401) can take long (retries, another
    process's fetch lock): the call's permit must not be held meanwhile, or its lease lapses before the
    request is sent, and with quota_auth_requests (h-quota) the token request waits for the very slot its
    own call holds (max_in_flight 1: a stall of the lease, timeout + 5 s, on every token fetch)."""
    import httpx

    from tests.unit.fakes import FakeVendor, hook_for, is_token_request, set_connection

    set_connection(monkeypatch, "clazar", extra={"max_in_flight": 1})
    fake = FakeVendor("clazar")
    held_at_token_time: list[int] = []
    holder: dict[str, Any] = {}

    def transport(request: httpx.Request) -> httpx.Response:
        if is_token_request(request):
            limiter = holder["limiter"]
            held_at_token_time.append(limiter.store.in_flight(limiter.key))
        return fake(request)

    hook = hook_for("clazar", transport=httpx.MockTransport(transport))
    holder["limiter"] = hook.client.limiter
    hook.request("GET", "/buyers")
    assert held_at_token_time == [0]  # before: [1], the call's only slot held through the token fetch
