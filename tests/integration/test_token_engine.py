"""The token engine's promises, each reproduced from outside the code against the real sandbox.

One token request per credential (threads, asyncio tasks, processes; a slow token endpoint), a Test
button that asks the vendor every time, ``Retry-After`` honoured by token requests, a shared-cache lock
that outlives a slow fetch, compare-before-evict that is atomic, and a 401 from another origin that
leaves our token alone. Each test here failed against the engine before these were fixed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.exceptions import VendorApiError
from airflow_vendorauth.hooks.kazi import KaziHook
from airflow_vendorauth.sandbox.client import Sandbox
from tests.services import require_redis

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/13"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def clear_redis_tokens() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("vendorauth:*"):
        client.delete(key)


def tuned(environment: dict[str, str], conn_var: str = "AIRFLOW_CONN_KAZI_DEFAULT", **extras: object) -> dict[str, str]:
    conn = json.loads(environment[conn_var])
    conn["extra"].update(extras)
    return {**environment, conn_var: json.dumps(conn)}


@pytest.fixture
def process_env(vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path) -> dict[str, str]:
    """The environment of a task process: the sandbox connections, a Fernet key, a private cache dir."""
    env = dict(os.environ)
    env["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
    env["AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR"] = str(tmp_path / "token-cache")
    return env


#: A task process: waits at a barrier (a directory) with its siblings, then runs ``ACTION``.
TASK = """
import hashlib, json, os, sys, time
from airflow_vendorauth.hooks.kazi import KaziHook
barrier, count, action = sys.argv[1], int(sys.argv[2]), sys.argv[3]
hook = KaziHook("kazi_default")
hook.settings
open(os.path.join(barrier, str(os.getpid())), "w").close()
deadline = time.time() + 60
while len(os.listdir(barrier)) < count and time.time() < deadline:
    time.sleep(0.005)
if action == "token":
    token = hook.get_token()
    print(json.dumps({"token": hashlib.sha256(token.access_token.encode()).hexdigest()[:16],
                      "requests": hook.token_requests}))
elif action == "test":
    ok, message = hook.test_connection()
    print(json.dumps({"ok": ok, "message": message, "requests": hook.token_requests}))
"""


def start_tasks(env: dict[str, str], count: int, action: str = "token") -> list[subprocess.Popen[str]]:
    barrier = tempfile.mkdtemp(prefix="vendorauth-barrier-")
    return [
        subprocess.Popen(
            [sys.executable, "-c", TASK, barrier, str(count), action],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def results(procs: list[subprocess.Popen[str]], timeout: float = 180) -> list[dict]:
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-3000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))
    return answers


def run_tasks(env: dict[str, str], count: int, action: str = "token") -> list[dict]:
    return results(start_tasks(env, count, action))


# ---- 1. single flight per credential and per process ------------------------------------------------


async def test_sixteen_hook_instances_in_one_event_loop_make_one_token_request(
    vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    vendor_sandbox.add_fault(vendor="kazi", route="token", latency_ms=400)
    hooks = [KaziHook("kazi_default") for _ in range(16)]  # sixteen deferred scans in one triggerer
    tokens = await asyncio.gather(*(h.aget_token() for h in hooks))
    assert vendor_sandbox.token_requests("kazi") == 1
    assert len({t.access_token for t in tokens}) == 1


def test_sixteen_threads_with_their_own_hooks_make_one_token_request(
    vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    vendor_sandbox.add_fault(vendor="kazi", route="token", latency_ms=400)
    barrier = threading.Barrier(16)
    tokens: list[str] = []

    def work() -> None:
        hook = KaziHook("kazi_default")
        assert hook.settings.conn_id == "kazi_default"  # the connection is read before the race
        barrier.wait()
        tokens.append(hook.get_token().access_token)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert vendor_sandbox.token_requests("kazi") == 1
    assert len(set(tokens)) == 1 and len(tokens) == 16


def test_threads_and_two_event_loops_share_one_flight(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    """A worker thread's sync hook and two triggerer-like event loops (each in its own thread) miss the
    token at once: one request for the process."""
    vendor_sandbox.add_fault(vendor="kazi", route="token", latency_ms=400)
    barrier = threading.Barrier(3)
    tokens: list[str] = []

    def sync_worker() -> None:
        hook = KaziHook("kazi_default")
        assert hook.settings.conn_id == "kazi_default"  # the connection is read before the race
        barrier.wait()
        tokens.extend(hook.get_token().access_token for _ in range(4))

    def loop_worker() -> None:
        async def main() -> None:
            hooks = [KaziHook("kazi_default") for _ in range(4)]
            for h in hooks:
                await h.asettings()
            barrier.wait()
            got = await asyncio.gather(*(h.aget_token() for h in hooks))
            tokens.extend(t.access_token for t in got)

        asyncio.run(main())

    threads = [threading.Thread(target=f) for f in (sync_worker, loop_worker, loop_worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert vendor_sandbox.token_requests("kazi") == 1
    assert len(tokens) == 12 and len(set(tokens)) == 1


# ---- 2. Test asks the vendor, never the cache ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_test_connection_asks_the_vendor_even_when_a_shared_cache_has_a_token(
    backend: str, process_env: dict, vendor_sandbox: Sandbox
) -> None:
    if backend == "redis":
        require_redis()
        clear_redis_tokens()
    env = tuned(process_env, cache="file" if backend == "file" else REDIS_URL)
    (first,) = run_tasks(env, 1)  # a task fetches and shares a token
    assert first["requests"] == 1
    vendor_sandbox.rotate_secret("kazi")  # the vendor's admin rotates the client secret
    (test,) = run_tasks(env, 1, "test")  # the Test button, in a fresh process
    assert test["ok"] is False, test
    assert "AADSTS7000215" in test["message"] and "invalid_client" in test["message"]
    assert vendor_sandbox.token_requests("kazi") == 2  # the credential was proven at the token endpoint


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_a_successful_test_stores_its_fresh_token_in_the_shared_cache(
    backend: str, process_env: dict, vendor_sandbox: Sandbox
) -> None:
    if backend == "redis":
        require_redis()
        clear_redis_tokens()
    env = tuned(process_env, cache="file" if backend == "file" else REDIS_URL)
    (first,) = run_tasks(env, 1)
    (test,) = run_tasks(env, 1, "test")
    assert test["ok"] is True and test["requests"] == 1, test
    (after,) = run_tasks(env, 1)  # the next task uses the token Test fetched
    assert after["requests"] == 0 and after["token"] != first["token"]
    assert vendor_sandbox.token_requests("kazi") == 2


def test_force_refresh_fetches_even_with_a_fresh_token_in_memory(
    vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    hook = KaziHook("kazi_default")
    first = hook.get_token()
    second = hook.get_token(force_refresh=True)
    assert second.access_token != first.access_token
    assert hook.get_token().access_token == second.access_token
    assert vendor_sandbox.token_requests("kazi") == 2


# ---- 3. Retry-After on token endpoints -------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_a_token_endpoint_retry_after_is_honoured(
    status: int, vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    vendor_sandbox.add_fault(
        vendor="kazi", route="token", rate_429=1.0, throttle_status=status, retry_after=2, count=1
    )
    started = time.monotonic()
    KaziHook("kazi_default").get_token()
    assert time.monotonic() - started >= 2.0
    assert vendor_sandbox.token_requests("kazi") == 2
    assert vendor_sandbox.stats()["kazi"][f"fault_{status}"] == 1


async def test_an_async_token_request_honours_retry_after(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    vendor_sandbox.add_fault(vendor="kazi", route="token", rate_429=1.0, retry_after=2, count=1)
    started = time.monotonic()
    await KaziHook("kazi_default").aget_token()
    assert time.monotonic() - started >= 2.0
    assert vendor_sandbox.token_requests("kazi") == 2


# ---- 4. a lock lease outlives the fetch it protects; a dead holder frees it ---------------------------------


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_four_processes_and_a_35_second_token_endpoint_make_one_request(
    backend: str, process_env: dict, vendor_sandbox: Sandbox
) -> None:
    if backend == "redis":
        require_redis()
        clear_redis_tokens()
    env = tuned(process_env, cache="file" if backend == "file" else REDIS_URL, timeout=60)
    vendor_sandbox.add_fault(vendor="kazi", route="token", latency_ms=35_000)
    answers = run_tasks(env, 4)
    assert vendor_sandbox.token_requests("kazi") == 1
    assert len({a["token"] for a in answers}) == 1  # every process got the one token
    assert sorted(a["requests"] for a in answers) == [0, 0, 0, 1]


def test_a_redis_lock_holder_that_dies_mid_fetch_frees_the_lock(process_env: dict, vendor_sandbox: Sandbox) -> None:
    require_redis()
    clear_redis_tokens()
    env = tuned(process_env, cache=REDIS_URL, timeout=60)
    vendor_sandbox.add_fault(vendor="kazi", route="token", latency_ms=30_000, count=1)
    (holder,) = start_tasks(env, 1)
    deadline = time.monotonic() + 60
    while vendor_sandbox.token_requests("kazi") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert vendor_sandbox.token_requests("kazi") == 1  # the holder is inside its slow fetch, lock taken
    os.kill(holder.pid, signal.SIGKILL)  # a lost host: no release, no renewal
    holder.wait()
    started = time.monotonic()
    (waiter,) = run_tasks(env, 1)
    assert waiter["requests"] == 1
    assert time.monotonic() - started < 25  # the lease ran out soon after its holder died


# ---- 5. compare-before-evict is atomic ------------------------------------------------------------------------

SLOW_EQUAL = """
import time
class SlowlyCompared(str):
    '''A token value whose comparison takes a while: it widens the window between "is it the one that
    failed?" and "delete it", where a newer token can arrive.'''
    def __eq__(self, other):
        time.sleep(1.0)
        return str.__eq__(self, other)
    __hash__ = str.__hash__
"""


def token(value: str, lifetime: int = 3600):  # type: ignore[no-untyped-def]
    import pendulum

    from airflow_vendorauth.auth.token import AccessToken

    now = pendulum.now("UTC")
    return AccessToken(access_token=value, expires_at=now.add(seconds=lifetime), obtained_at=now)


def test_memory_cache_evict_never_deletes_a_token_stored_meanwhile() -> None:
    from airflow_vendorauth.auth.cache import MemoryTokenCache

    namespace: dict = {}
    exec(SLOW_EQUAL, namespace)
    cache = MemoryTokenCache()
    cache.put("k", token("old-token-value"))
    evicting = threading.Thread(target=cache.evict, args=("k", namespace["SlowlyCompared"]("old-token-value")))
    evicting.start()
    time.sleep(0.3)  # the evict is comparing now
    cache.put("k", token("new-token-value"))  # another thread just fetched a new token
    evicting.join()
    current = cache.get("k")
    assert current is not None and current.access_token == "new-token-value"


def test_file_cache_evict_in_another_process_never_deletes_a_newer_token(tmp_path: Path) -> None:
    from airflow_vendorauth.auth.cipher import TokenCipher
    from airflow_vendorauth.auth.file_cache import FileTokenCache

    key = Fernet.generate_key().decode()
    cache = FileTokenCache(tmp_path / "cache", TokenCipher([key]))
    cache.store("k", token("old-token-value"))
    evictor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SLOW_EQUAL + "import sys\n"
            "from airflow_vendorauth.auth.cipher import TokenCipher\n"
            "from airflow_vendorauth.auth.file_cache import FileTokenCache\n"
            f"cache = FileTokenCache({str(tmp_path / 'cache')!r}, TokenCipher([{key!r}]))\n"
            "print('evicting', flush=True)\n"
            "cache.evict('k', SlowlyCompared('old-token-value'))\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert evictor.stdout is not None and evictor.stdout.readline().strip() == "evicting"
    time.sleep(0.4)  # the other process is comparing now
    cache.store("k", token("new-token-value"))  # this process just fetched a new token
    assert evictor.wait(timeout=30) == 0
    current = cache.load("k")
    assert current is not None and current.access_token == "new-token-value"


@pytest.mark.parametrize("backend", ["memory", "file", "redis"])
def test_a_late_401_on_an_old_token_keeps_the_newer_one(backend: str, tmp_path: Path) -> None:
    from airflow_vendorauth.auth.cache import MemoryTokenCache
    from airflow_vendorauth.auth.cipher import TokenCipher

    cipher = TokenCipher([Fernet.generate_key().decode()])
    if backend == "memory":
        cache = MemoryTokenCache()
        store, load = cache.put, cache.get
    elif backend == "file":
        from airflow_vendorauth.auth.file_cache import FileTokenCache

        cache = FileTokenCache(tmp_path, cipher)  # type: ignore[assignment]
        store, load = cache.store, cache.load  # type: ignore[attr-defined]
    else:
        require_redis()
        clear_redis_tokens()
        from airflow_vendorauth.auth.redis_cache import RedisTokenCache

        cache = RedisTokenCache(REDIS_URL, cipher)  # type: ignore[assignment]
        store, load = cache.store, cache.load  # type: ignore[attr-defined]
    store("k", token("newer-token-value"))
    cache.evict("k", "older-token-value")  # a request that left with the old token got its 401 only now
    current = load("k")
    assert current is not None and current.access_token == "newer-token-value"


# ---- 6. a 401 from another origin says nothing about our token --------------------------------------------------


def test_a_401_from_another_origin_keeps_the_token(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    hook = KaziHook("kazi_default")
    hook.request("GET", "/tagging/v2/expectations")
    before = hook.get_token().access_token
    # Same server, another origin (localhost instead of 127.0.0.1): our headers never go there, so its
    # 401 is about the missing credentials, not about our token.
    foreign = vendor_sandbox.url.replace("127.0.0.1", "localhost") + "/kazi/tagging/v2/expectations"
    with pytest.raises(VendorApiError) as refused:
        hook.request("GET", foreign)
    assert refused.value.status == 401
    assert hook.get_token().access_token == before
    hook.request("GET", "/tagging/v2/expectations")
    assert vendor_sandbox.token_requests("kazi") == 1
    assert vendor_sandbox.stats()["kazi"]["status_401"] == 1  # the foreign call was sent once, not resent


async def test_hooks_of_one_credential_share_one_async_client_and_few_connections(
    vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    """Fifty hooks in one event loop (fifty deferred waits in a triggerer) share one pooled client."""
    from airflow_vendorauth.client import pool

    hooks = [KaziHook("kazi_default") for _ in range(50)]
    await asyncio.gather(*(h.arequest("GET", "/tagging/v2/expectations", params={"pageSize": 1}) for h in hooks))
    assert pool.shared_clients() == 1
    assert len({id(await h.aget_client()) for h in hooks}) == 1
    for h in hooks[:-1]:
        await h.aclose()
    assert pool.shared_clients() == 1  # still in use by the last one
    await hooks[-1].aclose()
    assert pool.shared_clients() == 0  # the last one to let go closed it
    assert vendor_sandbox.token_requests("kazi") == 1
