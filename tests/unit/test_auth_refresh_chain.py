"""Rotating refresh tokens in the TokenProvider (auth/provider.py): the next token kept in memory first
and written to the shared cache with retries, the newest copy spent next, a fetch that survives the
waiter cancelled while it runs, no refresh without the shared lock, a lost chain that says how to
re-seed, and Test that never spends a memory-only chain. The authorization server is a fake that
rotates like a strict one (RFC 9700): each refresh token works once; reuse is counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pendulum
import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.auth import refresh_chain as chain_module
from airflow_vendorauth.auth.cache import CacheLockUnavailable, MemoryTokenCache, RefreshChain
from airflow_vendorauth.auth.cipher import TokenCipher
from airflow_vendorauth.auth.file_cache import FileTokenCache
from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.provider import forget_remembered_failures as provider_forget
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.exceptions import TokenRequestError

SEED = "rt-0"


class RotatingServer:
    """The endpoint as the provider sees it: spends a refresh token once, answers the next one."""

    vendor, conn_id, budget_seconds, attempt_seconds = "OAuth 2.0", "oauth2_default", 5.0, 1.0

    def __init__(self, delay: float = 0.0) -> None:
        self.valid = SEED
        self.spent: list[str] = []
        self.reuse = 0
        self.delay = delay
        self._guard = threading.Lock()

    @property
    def requests_sent(self) -> int:
        return len(self.spent)

    def fetch(self, refresh_token: str | None = None) -> AccessToken:
        assert refresh_token is not None
        time.sleep(self.delay)
        with self._guard:
            self.spent.append(refresh_token)
            if refresh_token != self.valid:
                self.reuse += refresh_token.startswith("rt-") and int(refresh_token[3:]) < int(self.valid[3:])
                raise TokenRequestError(
                    "refused", vendor=self.vendor, conn_id=self.conn_id, status=400, error="invalid_grant",
                    error_description="The refresh token was already used",
                )
            self.valid = f"rt-{len(self.spent)}"
            now = pendulum.now("UTC")
            return AccessToken(access_token=f"at-{len(self.spent)}", expires_at=now.add(seconds=3600),
                               obtained_at=now, refresh_token=self.valid)

    def spend(self, refresh_token: str, *, before_send: Any, repeat_until: float | None = None,
              presented_before: bool = False) -> AccessToken:
        before_send()
        return self.fetch(refresh_token)

    def close(self) -> None:
        pass


class FlakyFileCache(FileTokenCache):
    """A file cache whose writes of the next refresh token fail while ``failing`` (a full disk, a Redis blip
    after the spend was recorded); with ``marks_fail`` the record of a spend (the pending mark) fails too."""

    def __init__(self, directory: Path, cipher: TokenCipher) -> None:
        super().__init__(directory, cipher)
        self.failing = False
        self.marks_fail = False

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        if (self.marks_fail if chain.pending is not None else self.failing):
            return False
        return super().store_refresh_token(key, chain, republish=republish)


def provider(server: RotatingServer, shared: Any = None, memory: MemoryTokenCache | None = None) -> TokenProvider:
    return TokenProvider(
        server,  # type: ignore[arg-type]
        key="chain",
        shared=shared,
        refresh_seed=SEED,
        memory=memory or MemoryTokenCache(),
        logger=logging.getLogger("test.chain"),
    )


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([Fernet.generate_key().decode()])


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain_module, "CHAIN_STORE_RETRY_SECONDS", 0.5)
    monkeypatch.setattr(chain_module, "CHAIN_HEAL_SECONDS", 0.05)


def test_a_failed_write_keeps_the_next_token_in_memory_and_the_next_refresh_spends_it(
    tmp_path: Path, cipher: TokenCipher, caplog: pytest.LogCaptureFixture
) -> None:
    server, shared = RotatingServer(), FlakyFileCache(tmp_path, cipher)
    worker = provider(server, shared)
    worker.get_token()  # spends rt-0; rt-1 is in memory and in the cache
    shared.failing = True
    with caplog.at_level(logging.WARNING):
        worker.get_token(force_refresh=True)  # spends rt-1; rt-2 cannot be written to the cache
    assert "kept ONLY in this process's memory" in caplog.text
    shared.failing = False
    worker.get_token(force_refresh=True)  # must spend rt-2 (memory), not rt-1 (the cache's stale copy)
    assert server.spent == ["rt-0", "rt-1", "rt-2"] and server.reuse == 0
    assert shared.load_refresh_token("chain") == RefreshChain("rt-3", 3)  # given back to the cache


def test_no_refresh_token_is_presented_when_the_cache_cannot_record_the_spend_first(
    tmp_path: Path, cipher: TokenCipher
) -> None:
    """The pending mark goes to the shared cache before the token leaves: presented without it, a process
    that died after the server's rotation would leave the others a spent token to present again."""
    server, shared = RotatingServer(), FlakyFileCache(tmp_path, cipher)
    shared.marks_fail = True
    with pytest.raises(TokenRequestError) as refused:
        provider(server, shared).get_token()
    assert server.spent == []
    assert "not spent" in str(refused.value) and "could not record the spend" in str(refused.value)
    assert refused.value.retryable
    shared.marks_fail = False
    provider(server, shared).get_token()  # the chain is intact: the seed is spent once, now
    assert server.spent == ["rt-0"]


def test_a_write_that_fails_for_a_moment_is_retried_before_the_lock_is_released(
    tmp_path: Path, cipher: TokenCipher
) -> None:
    server, shared = RotatingServer(), FlakyFileCache(tmp_path, cipher)
    shared.failing = True
    threading.Timer(0.25, lambda: setattr(shared, "failing", False)).start()
    provider(server, shared).get_token()
    # another process, with nothing in its memory, finds the next token in the cache
    provider(server, FileTokenCache(tmp_path, cipher)).get_token(force_refresh=True)
    assert server.spent == ["rt-0", "rt-1"] and server.reuse == 0


def test_a_cancelled_waiter_never_lets_a_second_refresh_start() -> None:
    """The waiter that started a 0.5 s refresh is cancelled after 0.1 s (a trigger's timeout); the next
    waiter must get the token that refresh brings, not spend the same refresh token again."""
    server, memory = RotatingServer(delay=0.5), MemoryTokenCache()

    async def scenario() -> str:
        worker = provider(server, memory=memory)
        first = asyncio.create_task(worker.aget_token())
        await asyncio.sleep(0.1)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        return (await provider(server, memory=memory).aget_token()).access_token

    assert asyncio.run(scenario()) == "at-1"
    assert server.spent == ["rt-0"] and server.reuse == 0
    assert memory.load_refresh_token("chain") == RefreshChain("rt-1", 1)  # stored, though its waiter left


def test_a_rotating_refresh_token_is_never_spent_without_the_shared_lock(
    tmp_path: Path, cipher: TokenCipher
) -> None:
    class NoLock(FileTokenCache):
        @contextlib.contextmanager
        def fetch_lock(self, key: str, wait_seconds: float, *, required: bool = False) -> Iterator[None]:
            if required:
                raise CacheLockUnavailable("the fetch lock of the Redis token cache at redis:6379/0 was not obtained")
            yield

    server = RotatingServer()
    with pytest.raises(TokenRequestError) as refused:
        provider(server, NoLock(tmp_path, cipher)).get_token()
    assert server.spent == []
    message = str(refused.value)
    assert "Redis token cache at redis:6379/0" in message and "never spent without it" in message
    assert refused.value.retryable


def test_a_lost_chain_says_so_and_how_to_reseed() -> None:
    server = RotatingServer()
    server.valid = "rt-9"  # spent elsewhere: the seed is long gone
    with pytest.raises(TokenRequestError) as refused:
        provider(server).get_token()
    assert server.spent == ["rt-0"]  # refused once, never presented again (nothing newer was found)
    message = str(refused.value)
    assert "chain is lost" in message and "the connection's seed" in message
    assert "Fix: get a new refresh token" in message and "Refresh token (refresh_token)" in message
    assert SEED not in message.replace("(refresh_token)", "")


# ---- Test on a refresh_token connection --------------------------------------------------------------------


def test_test_on_a_memory_only_chain_checks_the_client_without_spending(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
    from airflow_vendorauth.retry import RetryPolicy

    sent: list[dict[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = dict(parse_qsl(request.content.decode()))
        sent.append(body)
        if request.headers.get("authorization", "").endswith("d3Jvbmc="):  # base64 of "wrong"
            return httpx.Response(401, json={"error": "invalid_client", "error_description": "bad secret"})
        return httpx.Response(400, json={"error": "invalid_grant", "error_description": "unknown refresh token"})

    conn = {"conn_type": "oauth2", "host": "https://api.example/v1", "login": "me", "password": "secret-value",
            "extra": {"auth_url": "https://idp.example/token", "grant_type": "refresh_token", "refresh_token": "seed-rt",
                      "cache": "memory"}}
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    hook = OAuth2Hook(transport=httpx.MockTransport(handle), retry_policy=RetryPolicy(max_attempts=1))
    ok, message = hook.test_connection()
    assert ok and "not spent" in message and "Token cache" in message
    assert [b["refresh_token"] for b in sent] == [chain_module.PROBE_REFRESH_TOKEN]  # the seed stays unspent


def test_after_the_cache_lost_the_chain_the_newest_copy_in_any_process_is_spent(
    tmp_path: Path, cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process A last saw generation 1, process B made generation 2; then the shared cache loses
    everything (a Redis restarted empty). A needs a token first and republishes its stale copy before it
    queues for the lock; B republishes generation 2 a moment later. A must wait for the copies and spend
    generation 2, not its own (spending its own is reuse: the server may revoke the whole grant)."""
    monkeypatch.setattr(chain_module, "CHAIN_HEAL_SECONDS", 0.6)
    server, shared = RotatingServer(), FileTokenCache(tmp_path, cipher)
    memory_a, memory_b = MemoryTokenCache(), MemoryTokenCache()
    a, b = provider(server, shared, memory_a), provider(server, shared, memory_b)
    a.get_token()  # rt-0 spent: generation 1 in A's memory and the cache
    b.get_token(force_refresh=True)  # rt-1 spent: generation 2 in B's memory and the cache
    for memory in (memory_a, memory_b):
        memory._tokens.clear()  # both access tokens are due
    for entry in tmp_path.glob("chain.*"):
        if entry.suffix in (".token", ".chain"):
            entry.unlink()  # the cache lost everything
    first = threading.Thread(target=a.get_token)
    first.start()
    time.sleep(0.15)
    b.get_token()  # B republishes generation 2 before it queues, then takes A's fresh token
    first.join()
    assert server.spent == ["rt-0", "rt-1", "rt-2"] and server.reuse == 0


def test_a_process_that_closes_gives_its_chain_back_to_a_cache_that_lost_it(tmp_path: Path, cipher: TokenCipher) -> None:
    """Process A rotated last (generation 1, in its memory and the cache); the cache then loses everything (a
    Redis restarted empty) and A ends before its next call would have given its copy back (the explorer's seed
    500023: A stopped by SIGTERM while Redis restarted, the other worker killed). Closing, A gives it back, so
    the next process spends generation 1, not the seed the server has already rotated."""
    server, shared = RotatingServer(), FileTokenCache(tmp_path, cipher)
    a = provider(server, shared, MemoryTokenCache())
    a.get_token()  # rt-0 spent: generation 1 in A's memory and the cache
    for entry in tmp_path.glob("chain.*"):
        if entry.suffix in (".token", ".chain"):
            entry.unlink()  # the cache lost everything
    a.close()
    later = provider(server, shared, MemoryTokenCache())
    later.get_token()
    assert server.spent == ["rt-0", "rt-1"] and server.reuse == 0


def test_closing_never_puts_an_older_generation_over_the_cache_s_newer_one(tmp_path: Path, cipher: TokenCipher) -> None:
    """A process that closes with an old copy (generation 1) while another rotated since (generation 2 in the
    cache) leaves the newer one in place: the next process spends rt-2."""
    server, shared = RotatingServer(), FileTokenCache(tmp_path, cipher)
    a, b = provider(server, shared, MemoryTokenCache()), provider(server, shared, MemoryTokenCache())
    a.get_token()
    b.get_token(force_refresh=True)
    a.close()
    provider(server, shared, MemoryTokenCache()).get_token(force_refresh=True)
    assert server.spent == ["rt-0", "rt-1", "rt-2"] and server.reuse == 0


def test_a_stop_during_a_refresh_waits_until_the_new_refresh_token_is_stored(
    tmp_path: Path, cipher: TokenCipher
) -> None:
    """Airflow's SIGTERM reaches the task (the operator's on_kill, in the main thread) while the server
    has just rotated the refresh token: the stop is raised once the new one is stored, and the retry
    spends it. Raised at once, the new refresh token would be in no cache: the chain lost for good."""
    from airflow_vendorauth import stopping
    from airflow_vendorauth.exceptions import ScanStopped

    class SignalledMidRotation(RotatingServer):
        def fetch(self, refresh_token: str | None = None) -> AccessToken:
            token = super().fetch(refresh_token)
            stopping.stop_task()  # the signal handler runs here, the answer not yet returned
            return token

    server = SignalledMidRotation()
    with pytest.raises(ScanStopped), stopping.running_scan():
        provider(server, FileTokenCache(tmp_path, cipher)).get_token()
    stopping.forget_stop()
    retry = provider(RotatingServer(), FileTokenCache(tmp_path, cipher))  # another process, memory empty
    retry.endpoint.valid = server.valid  # type: ignore[attr-defined]
    assert retry.get_token().access_token == "at-1"
    assert retry.endpoint.spent == ["rt-1"]  # type: ignore[attr-defined]


def test_a_stop_during_a_refresh_whose_store_keeps_failing_ends_well_before_the_sigkill(
    tmp_path: Path, cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store of the new refresh token is retried for 5 s; once the task was told to stop, for 1 s: the
    scan still gets its final commit before the supervisor's SIGKILL (5 s after the SIGTERM)."""
    from airflow_vendorauth import stopping
    from airflow_vendorauth.exceptions import ScanStopped

    monkeypatch.setattr(chain_module, "CHAIN_STORE_RETRY_SECONDS", 5.0)

    class SignalledMidRotation(RotatingServer):
        def fetch(self, refresh_token: str | None = None) -> AccessToken:
            token = super().fetch(refresh_token)
            stopping.stop_task()
            return token

    shared = FlakyFileCache(tmp_path, cipher)
    shared.failing = True
    started = time.monotonic()
    with pytest.raises(ScanStopped), stopping.task_running(None), stopping.running_scan():
        provider(SignalledMidRotation(), shared).get_token()
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("where", ["main thread", "page thread"])
def test_no_refresh_token_is_spent_once_the_task_is_told_to_stop(where: str) -> None:
    """A rotation begun after the SIGTERM could be cut by the SIGKILL 5 s later: the chain would be lost.
    Not begun, it costs one token and keeps the chain for the retry."""
    from airflow_vendorauth import stopping
    from airflow_vendorauth.exceptions import ScanStopped

    server = RotatingServer()
    worker = provider(server)
    raised: list[BaseException] = []

    def refresh() -> None:
        try:
            worker.get_token()
        except BaseException as exc:  # noqa: BLE001 - what the page thread's future would hold
            raised.append(exc)

    with stopping.task_running(None):
        stopping.stop_task()
        if where == "main thread":
            refresh()
        else:
            thread = threading.Thread(target=refresh)
            thread.start()
            thread.join(10)
    assert server.spent == []
    assert len(raised) == 1 and isinstance(raised[0], ScanStopped)


def test_a_refused_token_is_never_presented_again_by_this_process_or_another(tmp_path: Path, cipher: TokenCipher) -> None:
    """The refusal is recorded with the token (a refused mark): a second process that finds it says the
    chain is lost without presenting it; so does this process on its next call (its remembered refusal)."""
    server, shared = RotatingServer(), FileTokenCache(tmp_path, cipher)
    server.valid = "rt-9"
    with pytest.raises(TokenRequestError):
        provider(server, shared).get_token()
    provider_forget()  # the memory of refusals is per process: a second process has none
    with pytest.raises(TokenRequestError) as again:
        provider(server, shared).get_token()
    assert "chain is lost" in str(again.value)
    assert server.spent == ["rt-0"]


def test_a_copy_read_from_the_cache_never_replaces_a_newer_one_in_memory() -> None:
    memory = MemoryTokenCache()
    memory.store_refresh_token("k", RefreshChain("rt-3", 3))
    memory.store_refresh_token("k", RefreshChain("rt-2", 2))  # an older shared copy, adopted later
    assert memory.load_refresh_token("k") == RefreshChain("rt-3", 3)


def test_other_processes_take_a_rotation_into_memory_within_a_moment(tmp_path: Path, cipher: TokenCipher) -> None:
    """A rotates and (its task done) ends; B, which only makes calls with a fresh access token, still holds
    the newest generation soon after: a shared cache that then loses everything gets it back from B."""
    server, shared = RotatingServer(), FileTokenCache(tmp_path, cipher)
    memory_b = MemoryTokenCache()
    b = provider(server, shared, memory_b)
    b.get_token()  # generation 1, from B's own refresh
    provider(server, shared).get_token(force_refresh=True)  # A: generation 2, then A ends
    deadline = time.monotonic() + 5
    while (memory_b.load_refresh_token("chain") or RefreshChain("", 0)).generation < 2 and time.monotonic() < deadline:
        b.get_token()  # a call with B's fresh token: the background keeps copies in step
        time.sleep(0.1)
    assert memory_b.load_refresh_token("chain") == RefreshChain("rt-2", 2)


def test_a_process_whose_refusal_is_remembered_still_gives_its_copy_back(tmp_path: Path, cipher: TokenCipher) -> None:
    """Found by the explorer (seed 1001): a process whose last refresh left the chain in doubt replays that
    failure for 30 s without touching the cache; when the cache lost everything meanwhile, its memory's copy
    (the spend's mark) must still go back, or a fresh process would present the spent token again."""

    class LostAnswer(RotatingServer):
        def fetch(self, refresh_token: str | None = None) -> AccessToken:
            super().fetch(refresh_token)  # rotated at the server ...
            error = TokenRequestError("no answer", vendor=self.vendor, conn_id=self.conn_id, retryable=True)
            error.maybe_spent = True  # ... and the answer lost
            raise error

    shared = FileTokenCache(tmp_path, cipher)
    worker = provider(LostAnswer(), shared)
    with pytest.raises(TokenRequestError, match="in doubt"):
        worker.get_token()
    for entry in tmp_path.glob("chain.*"):
        entry.unlink()  # the cache loses everything (a Redis restarted empty)
    deadline = time.monotonic() + 3
    while shared.load_refresh_token("chain") is None and time.monotonic() < deadline:
        with pytest.raises(TokenRequestError, match="in doubt"):
            worker.get_token()  # the remembered failure, replayed
        time.sleep(0.1)
    back = shared.load_refresh_token("chain")
    assert back is not None and back.pending is not None and back.generation == 0


def test_a_process_waiting_for_the_lock_keeps_giving_its_copy_back(
    tmp_path: Path, cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the explorer (seed 2035): A holds the newest copy and waits for the lock (its holder was
    killed mid-spend); the cache then loses everything; B, fresh, takes the lock first. A must keep giving
    its copy back while it waits, or B finds only the seed and presents it again."""
    monkeypatch.setattr(chain_module, "CHAIN_HEAL_SECONDS", 0.8)
    monkeypatch.setattr(chain_module, "CHAIN_REPUBLISH_SECONDS", 0.2)

    class SlowLock(FileTokenCache):  # A's lock comes late: a long queue
        @contextlib.contextmanager
        def fetch_lock(self, key: str, wait_seconds: float, *, required: bool = False) -> Iterator[Any]:
            time.sleep(2.0)
            with super().fetch_lock(key, wait_seconds, required=required) as held:
                yield held

    server = RotatingServer()
    memory_a = MemoryTokenCache()
    setup = provider(server, FileTokenCache(tmp_path, cipher), memory_a)
    setup.get_token()
    setup.get_token(force_refresh=True)  # generation 2, in A's memory and the cache
    memory_a._tokens.clear()  # A's access token is due ...
    for entry in tmp_path.glob("chain.token"):
        entry.unlink()  # ... and the cache has none: A queues for the lock
    a = provider(server, SlowLock(tmp_path, cipher), memory_a)
    waiting = threading.Thread(target=a.get_token)
    waiting.start()
    time.sleep(0.3)
    for entry in tmp_path.glob("chain.*"):
        if entry.suffix in (".token", ".chain"):
            entry.unlink()  # the cache loses everything (a Redis restarted empty)
    provider(server, FileTokenCache(tmp_path, cipher)).get_token()  # B: fresh, takes the free lock
    waiting.join()
    assert server.reuse == 0 and server.spent == ["rt-0", "rt-1", "rt-2"], server.spent
