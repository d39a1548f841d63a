"""The refresh chain's rules under the outside review of issue 31 (auth/refresh_chain.py, chain_copy.py and
the caches): each test names the rule, sets up the copies and the server as a failure would leave them, and
checks that no refresh token is presented twice and that no good chain is reported in doubt."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.auth import redis_lock
from airflow_vendorauth.auth import refresh_chain as chain_module
from airflow_vendorauth.auth.cache import NO_LOCK, CacheLockLost, MemoryTokenCache, RefreshChain
from airflow_vendorauth.auth.chain_copy import Pending
from airflow_vendorauth.auth.cipher import TokenCipher
from airflow_vendorauth.auth.file_cache import FileTokenCache
from airflow_vendorauth.auth.grants import Attempt, TokenRequest
from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.provider import forget_remembered_failures as provider_forget
from airflow_vendorauth.auth.redis_cache import RedisTokenCache, credential_key
from airflow_vendorauth.auth.refresh_chain import RefreshChainKeeper
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.token_endpoint import TokenEndpoint
from airflow_vendorauth.exceptions import TokenRequestError
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.retry import RetryPolicy
from tests.redis_server import RedisServer
from tests.unit.test_auth_refresh_chain import SEED, RotatingServer


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([Fernet.generate_key().decode()])


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain_module, "CHAIN_STORE_RETRY_SECONDS", 0.5)
    monkeypatch.setattr(chain_module, "CHAIN_HEAL_SECONDS", 0.05)
    provider_forget()


def process(server: RotatingServer, shared: object = None, memory: MemoryTokenCache | None = None,
            reuse: float = 0.0) -> TokenProvider:
    """A task process's provider of the chain (its own memory unless one is given)."""
    return TokenProvider(
        server,  # type: ignore[arg-type]
        key="chain",
        shared=shared,  # type: ignore[arg-type]
        refresh_seed=SEED,
        refresh_reuse_seconds=reuse,
        memory=memory or MemoryTokenCache(),
        logger=logging.getLogger("test.chain"),
    )


class NotReachedOnce(RotatingServer):
    """The first attempt never reaches the server (no connection, a 503): the token stays good."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def fetch(self, refresh_token: str | None = None) -> AccessToken:
        if self.failures:
            self.failures -= 1
            raise TokenRequestError("503", vendor=self.vendor, conn_id=self.conn_id, status=503, retryable=True)
        return super().fetch(refresh_token)


# ---- 2: a pending mark compares equal after a round trip through a cache --------------------------------------


def test_a_pending_mark_keeps_its_time_to_the_millisecond_so_it_reads_back_equal() -> None:
    mark = Pending.new()
    assert Pending.decode(mark.encode()) == mark


def test_a_spend_that_never_reached_the_server_is_settled_in_the_file_cache(tmp_path: Path, cipher: TokenCipher) -> None:
    """The settle compares the file's mark with the spender's: with the time at full precision in memory and
    to the millisecond in the file they never matched, the mark stayed, and every later refresh said the
    chain was in doubt though its token was never presented."""
    server, shared = NotReachedOnce(), FileTokenCache(tmp_path, cipher)
    with pytest.raises(TokenRequestError, match="503"):
        process(server, shared).get_token()
    left = shared.load_refresh_token("chain")
    assert left is not None and left.pending is None, left
    assert process(server, shared).get_token().access_token == "at-1"  # another process: the seed, once
    assert server.spent == ["rt-0"] and server.reuse == 0


# ---- 6: the spend mark goes only once the successor is stored -----------------------------------------------


class RecordingLock:
    """A fetch lock that notes when the spend mark would be set and removed."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def confirm(self, seconds: float) -> None:
        self.events.append("spend mark set")

    def spend_over(self) -> None:
        self.events.append("spend mark removed")

    def fence(self, seconds: float) -> None:
        return None


class RecordingFileCache(FileTokenCache):
    def __init__(self, directory: Path, cipher: TokenCipher, events: list[str]) -> None:
        super().__init__(directory, cipher)
        self.events = events

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        stored = super().store_refresh_token(key, chain, republish=republish)
        self.events.append(f"generation {chain.generation}{' pending' if chain.pending else ''} stored")
        return stored


def test_the_spend_mark_is_removed_only_after_the_successor_is_stored(tmp_path: Path, cipher: TokenCipher) -> None:
    """The spend mark is what a holder of the lock of a restarted Redis waits on: removed before the successor
    is stored (or if this process dies in between), that holder finds no mark and no successor, and presents
    the token just spent."""
    events: list[str] = []
    keeper = process(RotatingServer(), RecordingFileCache(tmp_path, cipher, events)).chain
    assert keeper is not None
    keeper.refresh(RecordingLock(events))
    assert events.index("generation 1 stored") < events.index("spend mark removed"), events


# ---- 5: the fence waits for another's spend mark as long as it stands --------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


def test_the_fence_waits_for_another_holders_spend_mark_however_long_it_stands(
    redis_server: RedisServer, cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spender from before a restart keeps its mark up while its attempts (and the store of their answer) go
    on, which may be longer than one attempt: retries, a slow store. A fence that gives up after one attempt's
    time reads the chain while that spend is still out, finds no successor, and presents the same token."""
    monkeypatch.setattr(redis_lock, "REASSERT_SECONDS", 0.0)
    cache = RedisTokenCache(redis_server.url(), cipher, lease_seconds=3.0, logger=logging.getLogger("test.redis"))
    cache.client.flushdb()
    spend_key = credential_key("chain", "spending")
    stop = threading.Event()

    def another_spender() -> None:  # puts its mark back every 0.1 s, for 2 s: four times the fence's "seconds"
        ends = time.monotonic() + 2.0
        while time.monotonic() < ends:
            cache.client.set(spend_key, b"another-holder", px=300)
            stop.wait(0.1)
        cache.client.delete(spend_key)

    cache.client.set(spend_key, b"another-holder", px=300)
    spender = threading.Thread(target=another_spender)
    spender.start()
    try:
        with cache.fetch_lock("chain", 5.0, required=True) as held:
            assert held is not None
            started = time.monotonic()
            held.fence(0.5)
            waited = time.monotonic() - started
            still_there = cache.client.get(spend_key)
    finally:
        stop.set()
        spender.join()
    assert still_there is None and waited >= 1.5, (waited, still_there)


# ---- 4: what the vendor said goes through redaction ---------------------------------------------------------


def test_a_vendor_description_that_echoes_the_refresh_token_is_masked_in_the_chain_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Some servers quote the refresh token they refuse ("refresh token <value> was already used"): the chain's
    own error (the lost chain, with the server's words) must mask it like every other message."""
    seed = "Xq7v2Lr9Tz4Kp8Wm3Nc6"  # shaped like a word to no pattern: only its value can mask it
    sent: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(dict(parse_qsl(request.content.decode())).get("refresh_token", ""))
        return httpx.Response(400, json={"error": "invalid_grant",
                                         "error_description": f"Unknown or already used refresh token {seed}"})

    conn = {"conn_type": "oauth2", "host": "https://api.example/v1", "login": "me", "password": "secret-value",
            "extra": {"auth_url": "https://idp.example/token", "grant_type": "refresh_token", "refresh_token": seed,
                      "cache": "memory"}}
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    hook = OAuth2Hook(transport=httpx.MockTransport(handle), retry_policy=RetryPolicy(max_attempts=1))
    with pytest.raises(TokenRequestError) as refused:
        hook.get_token()
    assert sent == [seed] and "chain is lost" in str(refused.value)
    error = refused.value
    for said in (str(error), error.summary, error.error_description or "", repr(error)):
        assert seed not in said, said
    assert "already used refresh token ***" in str(error)


# ---- 3: after a spend in doubt, nothing is sent once the reuse interval has passed ---------------------------


class LostThenServed:
    """A token endpoint that rotates every refresh token it is shown, and loses the first answers (502)."""

    def __init__(self, lost: int, retry_after: str = "0") -> None:
        self.lost, self.retry_after = lost, retry_after
        self.presented: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.presented.append(dict(parse_qsl(request.content.decode()))["refresh_token"])
        if self.lost:
            self.lost -= 1
            return httpx.Response(502, text="bad gateway", headers={"Retry-After": self.retry_after})
        return httpx.Response(200, json={"access_token": f"at-{len(self.presented)}", "token_type": "Bearer",
                                         "expires_in": 3600, "refresh_token": f"rt-next-{len(self.presented)}"})


def keeper_on(server: LostThenServed, memory: MemoryTokenCache, reuse: float) -> RefreshChainKeeper:
    def build(attempt: Attempt) -> TokenRequest:
        assert attempt.refresh_token is not None
        form = {"grant_type": "refresh_token", "refresh_token": attempt.refresh_token}
        return TokenRequest(url=attempt.token_url, form=form, secrets=(attempt.refresh_token,))

    endpoint = TokenEndpoint(
        vendor="OAuth 2.0", conn_id="oauth2_default", build=build, token_url="https://idp.example/token",
        policy=RetryPolicy(max_attempts=4, initial_wait_seconds=0.01, max_wait_seconds=0.02), timeout=1.0,
        verify=True, logger=logging.getLogger("test.chain"), transport=httpx.MockTransport(server.handle),
    )
    return RefreshChainKeeper(endpoint, key="chain", seed=SEED, shared=None, memory=memory,
                              logger=logging.getLogger("test.chain"), reuse_seconds=reuse)


def test_a_lost_answer_is_not_retried_once_the_reuse_interval_has_passed() -> None:
    """The retry decision was taken before the backoff (here the server's Retry-After of 1 s): the resend then
    left after the 0.5 s interval, a reuse the server may punish by revoking the grant."""
    server = LostThenServed(lost=1, retry_after="1")
    memory = MemoryTokenCache()
    with pytest.raises(TokenRequestError, match="chain is in doubt"):
        keeper_on(server, memory, reuse=0.5).refresh(NO_LOCK)
    assert server.presented == [SEED]
    held = memory.load_refresh_token("chain")
    assert held is not None and held.pending is not None  # the spend stays known: nobody presents it again


def test_within_the_reuse_interval_a_lost_answer_is_sent_again() -> None:
    server = LostThenServed(lost=1)
    memory = MemoryTokenCache()
    assert keeper_on(server, memory, reuse=30).refresh(NO_LOCK).access_token == "at-2"
    assert server.presented == [SEED, SEED]
    assert memory.load_refresh_token("chain") == RefreshChain("rt-next-2", 1)


def test_a_spend_found_in_doubt_is_not_sent_again_once_its_interval_closed_while_the_refresher_waited() -> None:
    """The interval is checked just before each attempt, the first one of a repeat included: a copy marked
    pending 0.4 s ago passes the check of a 0.5 s interval, then the lock's proof takes 0.2 s."""
    server = LostThenServed(lost=0)
    memory = MemoryTokenCache()
    memory.store_refresh_token("chain", RefreshChain(SEED, 0, pending=Pending(round(time.time() - 0.4, 3), "other-1")))

    class SlowProof(RecordingLock):
        def confirm(self, seconds: float) -> None:
            time.sleep(0.2)

    with pytest.raises(TokenRequestError, match="chain is in doubt"):
        keeper_on(server, memory, reuse=0.5).refresh(SlowProof([]))
    assert server.presented == []


def test_a_lock_lost_after_a_lost_answer_keeps_the_spend_in_doubt() -> None:
    """The first attempt's answer was lost (the server may have rotated the token), then the lock is found
    lost before the retry: the spend's mark must stay. Settled as 'nothing reached the server', the token
    reads as good to everyone, who present it again after the interval."""
    server = LostThenServed(lost=1)
    memory = MemoryTokenCache()

    class LostOnSecondProof(RecordingLock):
        def confirm(self, seconds: float) -> None:
            super().confirm(seconds)
            if len(self.events) > 1:
                raise CacheLockLost("the fetch lock is no longer this process's")

    with pytest.raises(TokenRequestError):
        keeper_on(server, memory, reuse=30).refresh(LostOnSecondProof([]))
    assert server.presented == [SEED]
    held = memory.load_refresh_token("chain")
    assert held is not None and held.pending is not None, held


# ---- 10: a late successor is followed ------------------------------------------------------------------------


def test_a_successor_given_back_after_the_chain_was_said_in_doubt_is_followed(
    tmp_path: Path, cipher: TokenCipher
) -> None:
    """A spent the seed and its successor reached the cache late (A's write failed, and A gave it back once the
    cache answered again). B, which found only A's mark and said the chain was in doubt, must follow the
    successor on its next call, not replay 'in doubt' for 30 s (its memory of refusals) while the chain goes on."""
    server, shared = RotatingServer(), FileTokenCache(tmp_path, cipher)
    server.valid = "rt-1"  # A's spend of the seed rotated it
    shared.store_refresh_token("chain", RefreshChain(SEED, 0, pending=Pending(round(time.time(), 3), "a-1")))
    b = process(server, shared)
    with pytest.raises(TokenRequestError, match="chain is in doubt"):
        b.get_token()
    shared.store_refresh_token("chain", RefreshChain("rt-1", 1), republish=True)  # A's late give-back
    assert b.get_token().access_token == "at-1"
    assert server.spent == ["rt-1"] and server.reuse == 0


# ---- 7: a spend's record is read back before the token leaves; the file cache never clobbers a chain ---------


def test_a_spend_whose_record_lost_to_a_newer_copy_presents_nothing(tmp_path: Path, cipher: TokenCipher) -> None:
    """Between this process's read of the chain and the write of its spend's record, another process gives
    back a newer generation: the record is not written (a copy is kept only over a lower one), and the token
    this process was about to present is already spent. Read back, the cache says so: nothing is presented."""
    server = RotatingServer()
    server.valid = "rt-1"  # the seed was spent elsewhere; its successor comes back just too late

    class NewerArrives(FileTokenCache):
        def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
            if chain.pending is not None and chain.generation == 0:
                super().store_refresh_token(key, RefreshChain("rt-1", 1), republish=True)
            return super().store_refresh_token(key, chain, republish=republish)

    worker = process(server, NewerArrives(tmp_path, cipher))
    with pytest.raises(TokenRequestError) as refused:
        worker.get_token()
    assert refused.value.retryable and "not spent" in str(refused.value)
    assert server.spent == [] and server.reuse == 0
    assert worker.get_token().access_token == "at-1"  # the next call spends the newest copy
    assert server.spent == ["rt-1"] and server.reuse == 0


def test_the_file_cache_never_overwrites_a_chain_entry_it_cannot_read(tmp_path: Path, cipher: TokenCipher) -> None:
    """An entry this process cannot decrypt may hold the chain under another Fernet key (a key rotated on some
    machines first): overwritten with the seed, the chain is gone for every process. Refused instead."""
    written = FileTokenCache(tmp_path, TokenCipher([Fernet.generate_key().decode()]))
    assert written.store_refresh_token("chain", RefreshChain("rt-7", 7))
    entry = tmp_path / "chain.chain"
    before = entry.read_bytes()
    cache = FileTokenCache(tmp_path, cipher)  # another key: the entry is unreadable here
    assert cache.store_refresh_token("chain", RefreshChain(SEED, 0, pending=Pending.new())) is False
    assert cache.settle_refresh_token("chain", RefreshChain(SEED, 0, pending=Pending.new())) is False
    assert entry.read_bytes() == before
    server = RotatingServer()
    with pytest.raises(TokenRequestError, match="not spent"):
        process(server, cache).get_token()
    assert server.spent == [] and entry.read_bytes() == before
    assert written.load_refresh_token("chain") == RefreshChain("rt-7", 7)


# ---- 1: a settled spend stays settled ------------------------------------------------------------------------


@pytest.fixture(params=["file", "redis"])
def shared_cache(request: pytest.FixtureRequest, tmp_path: Path, cipher: TokenCipher) -> object:
    if request.param == "file":
        return FileTokenCache(tmp_path, cipher)
    server: RedisServer = request.getfixturevalue("redis_server")
    cache = RedisTokenCache(server.url(), cipher, lease_seconds=3.0, logger=logging.getLogger("test.redis"))
    cache.client.flushdb()
    return cache


def test_a_settled_spend_is_never_marked_pending_again_by_an_older_copy(shared_cache: object) -> None:
    """B took A's spend's record into its memory while the spend was out (every process keeps the shared copy
    in step); the spend never reached the server (503) and A settled it. B's copy, given back later (its
    offer-back, or its next refresh that finds its own copy 'newer'), must not turn the settled generation back
    into pending: every process would then say the chain is in doubt though its token was never presented."""
    memory_b = MemoryTokenCache()
    b = process(RotatingServer(), shared_cache, memory_b)
    assert b.chain is not None

    class AdoptedMidSpend(NotReachedOnce):
        def fetch(self, refresh_token: str | None = None) -> AccessToken:
            if self.failures:
                b.chain.adopt_shared()  # type: ignore[union-attr]  # B reads A's record meanwhile
            return super().fetch(refresh_token)

    server = AdoptedMidSpend()
    with pytest.raises(TokenRequestError, match="503"):
        process(server, shared_cache).get_token()  # A: the spend did not reach the server, settled
    held_b = memory_b.load_refresh_token("chain")
    assert held_b is not None and held_b.pending is not None  # B holds the record, as it was
    b.chain.offer_back()  # B gives its copy back
    left = shared_cache.load_refresh_token("chain")  # type: ignore[attr-defined]
    assert left is not None and left.pending is None, left
    b.endpoint = b.chain.endpoint = server  # type: ignore[assignment]
    assert b.get_token().access_token == "at-1"  # B itself spends the seed, once, without doubt
    assert server.spent == ["rt-0"] and server.reuse == 0
