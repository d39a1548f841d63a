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

from airflow_vendorauth.auth import provider as provider_module
from airflow_vendorauth.auth.cache import CacheLockUnavailable, MemoryTokenCache, RefreshChain
from airflow_vendorauth.auth.cipher import TokenCipher
from airflow_vendorauth.auth.file_cache import FileTokenCache
from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.exceptions import TokenRequestError

SEED = "rt-0"


class RotatingServer:
    """The endpoint as the provider sees it: spends a refresh token once, answers the next one."""

    vendor, conn_id, budget_seconds = "OAuth 2.0", "oauth2_default", 5.0

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

    def close(self) -> None:
        pass


class FlakyFileCache(FileTokenCache):
    """A file cache whose refresh token writes fail while ``failing`` (a full disk, a Redis blip)."""

    def __init__(self, directory: Path, cipher: TokenCipher) -> None:
        super().__init__(directory, cipher)
        self.failing = False

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        return False if self.failing else super().store_refresh_token(key, chain, republish=republish)


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
    monkeypatch.setattr(provider_module, "CHAIN_STORE_RETRY_SECONDS", 0.5)
    monkeypatch.setattr(provider_module, "CHAIN_HEAL_SECONDS", 0.05)


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
            "extra": {"auth_url": "https://idp.example/token", "grant_type": "refresh_token", "refresh_token": "seed-rt"}}
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    hook = OAuth2Hook(transport=httpx.MockTransport(handle), retry_policy=RetryPolicy(max_attempts=1))
    ok, message = hook.test_connection()
    assert ok and "not spent" in message and "Token cache" in message
    assert [b["refresh_token"] for b in sent] == [provider_module.PROBE_REFRESH_TOKEN]  # the seed stays unspent


def test_after_the_cache_lost_the_chain_the_newest_copy_in_any_process_is_spent(
    tmp_path: Path, cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process A last saw generation 1, process B made generation 2; then the shared cache loses
    everything (a Redis restarted empty). A needs a token first and republishes its stale copy before it
    queues for the lock; B republishes generation 2 a moment later. A must wait for the copies and spend
    generation 2, not its own (spending its own is reuse: the server may revoke the whole grant)."""
    monkeypatch.setattr(provider_module, "CHAIN_HEAL_SECONDS", 0.6)
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

    monkeypatch.setattr(provider_module, "CHAIN_STORE_RETRY_SECONDS", 5.0)

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
