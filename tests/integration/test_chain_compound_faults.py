"""A rotating refresh-token chain when two ordinary events meet (issue 31: cases 2 and 3, and the lost answer
the fault explorer schedules): each test drives real task processes against the sandbox's token server,
which logs every refresh token presented (RFC 9700's reuse detection), and a redis-server it kills.

- Redis restarts while a process holds the fetch lock before its spend: the lock it held is gone and
  another process takes the new one; the first must not spend (it proves the lock just before the spend).
- Redis restarts while a process's spend is in flight: the lock it held is gone; a process that takes the
  new one must wait until that spend is over (the fence), then spend its successor.
- The token endpoint rotates the token but its answer is lost (a dropped connection, a gateway's 502, a
  timeout): the token is not presented again, by that process or any other, and every one says the chain
  is in doubt; with the server's reuse interval declared, the spend is retried within it and the chain goes on.
- A process is killed (SIGKILL) while its spend is in flight: the next process finds the spend's record and
  does not present the token again.
- Test from a process without the workers' file cache spends nothing; with no cache written out, a
  rotating connection is refused before any request; an unreachable Redis is named by Test, and a rotating
  chain fails at once on a Redis host that does not resolve.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection
from tests.redis_server import RedisServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
#: A task process: waits for its go file (if any), sets the chain's heal wait, asks for a token once.
PROCESS = """
import json, os, sys, time
from airflow_vendorauth.auth import refresh_chain
refresh_chain.CHAIN_HEAL_SECONDS = float(os.environ.get("HEAL_SECONDS", "0.2"))
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
hook = OAuth2Hook("oauth2_default")
assert hook.settings is not None
print("READY", flush=True)
go = os.environ.get("GO_FILE")
while go and not os.path.exists(go):
    time.sleep(0.01)
try:
    token = hook.get_token()
    print(json.dumps({"ok": True, "requests": hook.token_requests}), flush=True)
except Exception as error:
    print(json.dumps({"ok": False, "error": type(error).__name__, "message": str(error)}), flush=True)
"""


def environment(sandbox: Sandbox, cache: str, tmp_path: Path, **extra: Any) -> dict[str, str]:
    conn = oauth2_connection(sandbox.url, grant_type="refresh_token", token_cache=cache)
    conn["extra"] |= {"max_retries": 2, **extra}
    conn["extra"]["refresh_token"] = sandbox.seed_refresh_token(conn["login"])
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_CONN_OAUTH2_DEFAULT": json.dumps(conn),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": str(tmp_path / "tokens"),
    }


def start(env: dict[str, str], **more: str) -> subprocess.Popen[str]:
    """A task process, once it has read its connection (its log goes to a file: a pipe nobody reads fills)."""
    log = Path(env["AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR"]).parent / f"process-{time.monotonic_ns()}.log"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-c", PROCESS], cwd=ROOT, env={**env, **more},
                                   stdout=subprocess.PIPE, stderr=sink, text=True)
    process.log = log  # type: ignore[attr-defined]
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # Airflow logs to stdout too
        if line.startswith("READY"):
            return process
        seen.append(line)
    raise AssertionError("".join(seen)[-3000:] + log.read_text()[-3000:])


def result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, process.log.read_text()[-3000:]  # type: ignore[attr-defined]
    return dict(json.loads(lines[-1]))


def presented(sandbox: Sandbox) -> list[str]:
    """The refresh tokens the server was shown, in order (Test's probe, a token that cannot exist, left out)."""
    return [e["token"] for e in sandbox.refresh_log() if e["outcome"] != "unknown"]


def lock_held(server: RedisServer) -> bool:
    import redis

    return any(redis.Redis(*server.address).scan_iter("vendorauth:*:lock"))


def test_a_process_whose_lock_redis_forgot_does_not_spend_after_another_took_the_new_one(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    """Worker A holds the fetch lock and waits to retry its spend (the token endpoint said 503, Retry-After
    6 s: nothing was spent); Redis restarts empty; worker B takes the free lock, waits out the fence and
    spends the seed. A, retrying after B spent, must find its lock gone and present nothing (without the
    proof before each attempt, it presents the seed B spent: reuse)."""
    vendor_sandbox.add_fault(vendor="oauth2", route="token", count=1, rate_429=1.0, throttle_status=503, retry_after=6)
    with RedisServer() as server:
        env = environment(vendor_sandbox, server.url(), tmp_path, timeout=0.5)  # an attempt lasts 3.5 s at most
        go = tmp_path / "go-b"
        b = start(env, GO_FILE=str(go), HEAL_SECONDS="0.1")
        a = start(env, HEAL_SECONDS="0.1")
        deadline = time.monotonic() + 30
        while vendor_sandbox.token_requests("oauth2") == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert lock_held(server)
        server.restart()  # A's lock is gone with everything else
        go.write_text("go")
        said_b, said_a = result(b), result(a)
    assert said_b["ok"], said_b
    assert not said_a["ok"] and "not spent" in said_a["message"] and "no longer this process's" in said_a["message"], said_a
    assert presented(vendor_sandbox) == [json.loads(env["AIRFLOW_CONN_OAUTH2_DEFAULT"])["extra"]["refresh_token"]]
    assert vendor_sandbox.stats()["oauth2"].get("refresh_reuse", 0) == 0


def test_a_process_that_takes_the_lock_of_a_restarted_redis_waits_for_a_spend_in_flight(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    """Worker A's spend is in flight (the token endpoint takes 2 s) when Redis restarts empty; worker B
    takes the new lock at once. B must wait until A's attempt is over (Redis's uptime tells it restarted),
    find A's successor there and spend that: the seed is presented once."""
    vendor_sandbox.add_fault(vendor="oauth2", route="token", latency_ms=2000, count=1)
    with RedisServer() as server:
        env = environment(vendor_sandbox, server.url(), tmp_path, timeout=3)  # a spend lasts 11 s at most
        go = tmp_path / "go-b"
        b = start(env, GO_FILE=str(go), HEAL_SECONDS="0.1")
        a = start(env, HEAL_SECONDS="0.1")
        deadline = time.monotonic() + 60
        while vendor_sandbox.token_requests("oauth2") == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.restart()
        go.write_text("go")
        said_a, said_b = result(a), result(b)
    log = presented(vendor_sandbox)
    assert said_a["ok"] and said_b["ok"], (said_a, said_b, vendor_sandbox.refresh_log(), a.log.read_text()[-3000:])  # type: ignore[attr-defined]
    assert len(log) == len(set(log)) == 2, log  # the seed by A, its successor by B: each once
    assert vendor_sandbox.stats()["oauth2"].get("refresh_reuse", 0) == 0


@pytest.mark.parametrize("lost_as", ["drop", "502", "timeout"])
def test_a_rotation_whose_answer_is_lost_is_never_presented_again_and_says_the_chain_is_in_doubt(
    lost_as: str, vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    # timeout: served (rotated), its answer held past the client's timeout
    vendor_sandbox.add_fault(vendor="oauth2", route="token", count=1, rate_lost=1.0, lost_as=lost_as, slow_seconds=2.5)
    with RedisServer() as server:
        env = environment(vendor_sandbox, server.url(), tmp_path, timeout=1)
        first = result(start(env))
        time.sleep(3)  # a timed-out request is served meanwhile: the token rotated after the client gave up
        second = result(start(env))  # another process, later: finds the spend's record
    for said in (first, second):
        assert not said["ok"] and "chain is in doubt" in said["message"], said
        assert "refresh_reuse_interval" in said["message"] and "new refresh token" in said["message"]
    assert len(presented(vendor_sandbox)) == 1  # once, by the first process; never again
    assert vendor_sandbox.stats()["oauth2"].get("refresh_reuse", 0) == 0


def test_within_the_servers_reuse_interval_a_lost_answer_is_retried_and_the_chain_goes_on(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    vendor_sandbox.configure(refresh_reuse_seconds=30)
    vendor_sandbox.add_fault(vendor="oauth2", route="token", count=1, rate_lost=1.0, lost_as="502")
    with RedisServer() as server:
        env = environment(vendor_sandbox, server.url(), tmp_path, timeout=1, refresh_reuse_interval=30)
        said = result(start(env))
    assert said["ok"], said
    outcomes = [e["outcome"] for e in vendor_sandbox.refresh_log()]
    assert outcomes == ["rotated", "repeated"], outcomes  # presented again within the interval, as allowed
    assert vendor_sandbox.stats()["oauth2"].get("refresh_reuse", 0) == 0


def test_a_process_killed_mid_spend_leaves_a_record_that_stops_the_next_one_presenting_it(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    # the server rotates at once and answers 2 s later: the process is killed in between
    vendor_sandbox.add_fault(vendor="oauth2", route="token", count=1, rate_lost=1.0, lost_as="timeout", slow_seconds=2)
    with RedisServer() as server:
        env = environment(vendor_sandbox, server.url(), tmp_path, timeout=3)
        a = start(env)
        deadline = time.monotonic() + 30
        while not vendor_sandbox.refresh_log() and time.monotonic() < deadline:
            time.sleep(0.005)
        a.send_signal(signal.SIGKILL)  # between the server's rotation and the store of its successor
        a.wait()
        later = result(start(env))  # waits out the dead holder's lease, then reads the spend's record
    assert not later["ok"] and "chain is in doubt" in later["message"], later
    assert "stored no answer" in later["message"], later
    assert len(presented(vendor_sandbox)) == 1
    assert vendor_sandbox.stats()["oauth2"].get("refresh_reuse", 0) == 0


# ---- Test, and connections that cannot keep a chain ---------------------------------------------------------


def test_test_with_the_file_cache_spends_nothing_and_says_so(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The api-server shares no disk with the workers: a chain spent through its file cache would leave the
    successor where no worker reads it (issue 31, case 3)."""
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    env = environment(vendor_sandbox, "file", tmp_path)
    for name in ("AIRFLOW_CONN_OAUTH2_DEFAULT", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR"):
        monkeypatch.setenv(name, env[name])
    ok, message = OAuth2Hook().test_connection()
    assert ok and "not spent" in message and "file cache" in message, message
    assert presented(vendor_sandbox) == []  # only the probe, a token that cannot exist
    worker = result(start(env))  # a worker on another machine, with the seed: it is still good
    assert worker["ok"], worker


def test_a_rotating_connection_without_a_cache_written_out_is_refused_before_any_request(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.exceptions import ConnectionConfigError
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    conn = oauth2_connection(vendor_sandbox.url, grant_type="refresh_token")
    del conn["extra"]["cache"]
    conn["extra"]["refresh_token"] = vendor_sandbox.seed_refresh_token(conn["login"])
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    with pytest.raises(ConnectionConfigError) as refused:
        OAuth2Hook().get_token()
    assert "Token cache (cache) is not set" in str(refused.value) and "write memory" in str(refused.value)
    ok, message = OAuth2Hook().test_connection()
    assert not ok and "Token cache (cache) is not set" in message
    assert vendor_sandbox.token_requests("oauth2") == 0
    conn["extra"]["cache"] = "memory"  # written out: accepted
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    OAuth2Hook().get_token()


def test_test_names_a_redis_it_cannot_reach_and_a_chain_fails_at_once_on_a_host_that_does_not_resolve(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.exceptions import TokenRequestError
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    closed = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(oauth2_connection(vendor_sandbox.url, token_cache=closed)))
    ok, message = OAuth2Hook().test_connection()
    assert ok and "token obtained" in message and "cannot be reached from here" in message, message
    assert "tokens will not be shared" in message
    conn = oauth2_connection(vendor_sandbox.url, grant_type="refresh_token", token_cache="redis://nohost.invalid:6379/0")
    conn["extra"]["refresh_token"] = vendor_sandbox.seed_refresh_token(conn["login"])
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    started = time.monotonic()
    with pytest.raises(TokenRequestError) as refused:
        OAuth2Hook().get_token()
    assert time.monotonic() - started < 10  # not the 155 s fetch budget
    assert "nohost.invalid" in str(refused.value) and "never spent without it" in str(refused.value)
    assert presented(vendor_sandbox) == []
