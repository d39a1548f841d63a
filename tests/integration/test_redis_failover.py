"""Redis as production runs it (issue 33): a Sentinel group and a Cluster the tests start on ports of their
own (``tests/redis_topologies.py``), failovers by SIGKILL of the primary.

- 8 task processes share one token (1 token request) through the Cluster, and through Sentinel.
- A rotated refresh token counts as stored only once a replica acknowledged it (``WAIT``).
- A rotating chain shared by 4 processes survives two Sentinel failovers (the second one losing data: the
  replica cut off while a rotation happens, then the primary killed) and one Cluster primary killed: no
  refresh token presented twice, no call failing outside each failover plus a short grace, a process
  started during a failover gets its first token, every process working at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.test_refresh_chain_outages import chain_environment, reports_of
from tests.redis_topologies import RedisClusterGroup, RedisProcesses, SentinelGroup, free_ports, wait_for
from tests.services import port_answers

pytestmark = pytest.mark.integration

#: A failover plus the client's rediscovery and a refresh's heal wait: what a call may cost beyond the kill.
GRACE_SECONDS = 3.0

TASK = """
import os, sys, time
from airflow_vendorauth.hooks.clazar import ClazarHook
barrier, count = sys.argv[1], int(sys.argv[2])
hook = ClazarHook("clazar_default")
hook.settings
open(os.path.join(barrier, str(os.getpid())), "w").close()
deadline = time.time() + 60
while len(os.listdir(barrier)) < count and time.time() < deadline:
    time.sleep(0.005)
for _ in range(3):
    hook.request("GET", "/listings/", params={"page_size": 5})
print(hook.token_requests)
"""


#: A task process calling the API every 50 ms; it reports its calls, its failures (with their time) and its
#: slowest call (what a failover cost it).
WORKER = """
import json, os, sys, time
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
barrier, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
hook = OAuth2Hook("oauth2_default")
hook.settings
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < count:
    time.sleep(0.005)
calls, failures, slowest, first = 0, [], 0.0, None
end = time.monotonic() + seconds
while time.monotonic() < end:
    began = time.monotonic()
    try:
        hook.request("GET", "/items", params={"per_page": 1})
        calls += 1
        first = first if first is not None else time.monotonic() - began
    except Exception as error:
        failures.append([time.time(), str(error)[:400]])
    slowest = max(slowest, time.monotonic() - began)
    time.sleep(0.05)
print(json.dumps({"calls": calls, "failures": failures, "slowest": slowest, "first": first}))
"""


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelGroup]:
    with SentinelGroup() as group:
        yield group


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterGroup]:
    with RedisClusterGroup() as group:
        yield group


def run_tasks(env: dict[str, str], count: int) -> list[int]:
    barrier = tempfile.mkdtemp(prefix="vendorauth-barrier-")
    procs = [subprocess.Popen([sys.executable, "-c", TASK, barrier, str(count)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        results.append(int(out.strip().splitlines()[-1]))
    return results


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
@pytest.mark.timeout(300)
def test_eight_processes_share_one_token(
    topology: str, request: pytest.FixtureRequest, vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    url = request.getfixturevalue(topology).url
    conn = json.loads(os.environ["AIRFLOW_CONN_CLAZAR_DEFAULT"])
    conn["extra"]["cache"] = url
    env = {**os.environ, "AIRFLOW_CONN_CLAZAR_DEFAULT": json.dumps(conn),
           "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
           "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": str(tmp_path / "tokens")}
    vendor_sandbox.add_fault(vendor="clazar", route="token", latency_ms=300)  # widen the race window
    per_process = run_tasks(env, 8)
    assert vendor_sandbox.token_requests("clazar") == 1
    assert sorted(per_process) == [0] * 7 + [1]


def _asleep(port: int) -> bool:
    """Whether the Redis on ``port`` is stalled (DEBUG SLEEP): it does not answer a PING within 0.1 s (a
    raw socket: redis-py's own retries would wait out the stall)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
        conn.sendall(b"PING\r\n")
        conn.settimeout(0.1)
        try:
            return not conn.recv(16)
        except TimeoutError:
            return True


def test_a_rotated_refresh_token_counts_as_stored_only_once_a_replica_has_it(sentinel: SentinelGroup) -> None:
    """The replica stalls (DEBUG SLEEP) while a rotation's successor is written: the write is not counted
    as stored; once the replica caught up it is, and the promoted replica holds it after the primary dies."""
    from airflow_vendorauth.auth.chain_copy import RefreshChain
    from airflow_vendorauth.auth.cipher import TokenCipher
    from airflow_vendorauth.auth.redis_cache import RedisTokenCache

    cache = RedisTokenCache(sentinel.url, TokenCipher([Fernet.generate_key().decode()]))
    assert cache.store_refresh_token("wait-k", RefreshChain("rt-1", 1))
    replica = sentinel.replica()
    stalled = threading.Thread(target=lambda: sentinel.client(replica).execute_command("DEBUG", "SLEEP", "2"))
    stalled.start()
    wait_for("the replica asleep", lambda: _asleep(replica), 5)  # not a fixed pause: a loaded machine is late
    started = time.monotonic()
    assert not cache.store_refresh_token("wait-k", RefreshChain("rt-2", 2))  # no replica acknowledged it
    assert time.monotonic() - started >= 0.9
    stalled.join()
    assert cache.store_refresh_token("wait-k", RefreshChain("rt-2", 2))
    sentinel.fail_over()
    found = cache.load_refresh_token("wait-k")
    assert found is not None and (found.refresh_token, found.generation) == ("rt-2", 2)


def test_a_chain_read_on_a_promoted_replica_that_missed_its_last_rotation_reads_as_republished(
    sentinel: SentinelGroup,
) -> None:
    """The failover that loses data: the replica cut off while a rotation is stored, then the primary
    killed. The promoted replica holds the generation before; read there (its run_id is not the one the
    rotation stamped), the chain counts as one the cache lost (copies are offered back before anyone
    spends) and the fence waits for a spender from before."""
    from airflow_vendorauth.auth.chain_copy import RefreshChain
    from airflow_vendorauth.auth.cipher import TokenCipher
    from airflow_vendorauth.auth.redis_cache import RedisTokenCache

    cache = RedisTokenCache(sentinel.url, TokenCipher([Fernet.generate_key().decode()]))
    assert cache.store_refresh_token("lost-k", RefreshChain("rt-1", 1))  # on the replica too (WAIT)
    before = cache.load_refresh_token("lost-k")
    assert before is not None and not before.republished and cache.fence_state("lost-k")[1] is False
    sentinel.client(sentinel.replica()).execute_command("REPLICAOF", "127.0.0.1", str(free_ports(1)[0]))
    wait_for("the primary without its replica", lambda: sentinel._in_sync(sentinel.primary()) is False, 10)
    assert cache.store_refresh_token("lost-k", RefreshChain("rt-2", 2))  # on the primary alone
    sentinel.fail_over()
    found = cache.load_refresh_token("lost-k")
    assert found is not None and found.generation == 1  # the promoted replica missed rotation 2
    assert found.republished  # so nobody spends it before the copies come back
    assert cache.fence_state("lost-k")[1] is True


def spawn_chain_worker(env: dict[str, str], barrier: str, count: int, seconds: float) -> subprocess.Popen[str]:
    """A worker that starts calling once ``count`` files are in ``barrier`` (each worker adds its own)."""
    return subprocess.Popen([sys.executable, "-c", WORKER, barrier, str(count), str(seconds)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_chain_workers(env: dict[str, str], count: int, seconds: float) -> list[subprocess.Popen[str]]:
    barrier = tempfile.mkdtemp(prefix="vendorauth-barrier-")
    procs = [spawn_chain_worker(env, barrier, count, seconds) for _ in range(count)]
    wait_for("the workers ready", lambda: len(os.listdir(barrier)) >= count, 120)
    return procs


def right_after_a_rotation(sandbox: Sandbox, within: float = 8.0) -> None:
    """Wait for the next rotation (the newest refresh token is then in the rotator's memory and Redis only)."""
    before = sandbox.token_requests("oauth2")
    deadline = time.monotonic() + within
    while sandbox.token_requests("oauth2") == before and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)


def failures_outside(reports: list[dict[str, Any]], outages: list[tuple[float, float]]) -> list[str]:
    return [text for r in reports for at, text in r["failures"]
            if not any(start <= at <= end + GRACE_SECONDS for start, end in outages)]


def presented_twice(sandbox: Sandbox) -> list[str]:
    tokens = [e["token"] for e in sandbox.refresh_log() if e["outcome"] != "unknown"]
    return sorted({t for t in tokens if tokens.count(t) > 1})


@pytest.mark.timeout(300)
def test_a_rotating_chain_shared_by_four_processes_survives_two_sentinel_failovers_one_losing_data(
    sentinel: SentinelGroup, vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    seconds = 24.0
    env = chain_environment(vendor_sandbox, sentinel.url, tmp_path)
    procs = start_chain_workers(env, 4, seconds)
    started = time.time()
    outages: list[tuple[float, float]] = []
    # 1: a clean failover right after a rotation (the successor is on the replica: WAIT).
    time.sleep(max(0.0, started + 4 - time.time()))
    right_after_a_rotation(vendor_sandbox)
    outages.append(sentinel.fail_over())
    # A task process that makes its first call (and needs its first token) during the next failover: it
    # starts now and waits for a second file in its barrier, put there right after the kill.
    late_barrier = tempfile.mkdtemp(prefix="vendorauth-barrier-")
    late = [spawn_chain_worker(env, late_barrier, 2, started + seconds - time.time())]
    wait_for("the late worker ready", lambda: os.listdir(late_barrier), 120)
    # 2: the replica cut off (pointed at a port where nobody listens) while a rotation happens, then the
    # primary killed: the promoted replica misses the newest generation; the processes give it back.
    time.sleep(max(0.0, started + 12 - time.time()))
    cut_off = sentinel.client(sentinel.replica())
    cut_off.execute_command("REPLICAOF", "127.0.0.1", str(free_ports(1)[0]))
    right_after_a_rotation(vendor_sandbox)
    time.sleep(0.2)  # the successor stored
    primary = sentinel.client(sentinel.primary())
    (chain,) = [k for k in primary.scan_iter("vendorauth:{*}:chain") if len(k) == len("vendorauth:{}:chain") + 64]
    lost = (int(cut_off.hget(chain, "gen") or 0), int(primary.hget(chain, "gen") or 0))
    killed = time.time()
    threading.Timer(0.2, lambda: Path(late_barrier, "go").touch()).start()
    outages.append((killed, sentinel.fail_over()[1]))
    reports = reports_of(procs)
    reports_late = reports_of(late)
    stats = vendor_sandbox.stats().get("oauth2", {})
    print(f"sentinel: outages {[(round(b - a, 1)) for a, b in outages]} s, {sum(r['calls'] for r in reports)} calls, "
          f"failures {[len(r['failures']) for r in reports + reports_late]}, {stats.get('token_requests')} refreshes, "
          f"reuse {stats.get('refresh_reuse', 0)}, slowest call {max(r['slowest'] for r in reports):.2f} s, "
          f"late process: calls {[r['calls'] for r in reports_late]}, first call {[r['first'] for r in reports_late]} s, "
          f"generations on the cut-off replica and the primary at the kill {lost}")
    assert lost[0] < lost[1], lost  # the promoted replica really missed the newest generation
    assert presented_twice(vendor_sandbox) == []
    assert stats.get("refresh_reuse", 0) == 0
    assert failures_outside(reports + reports_late, outages) == [], [r["failures"][:2] for r in reports + reports_late]
    assert all(r["calls"] > 20 for r in reports) and reports_late and reports_late[0]["calls"] > 0
    assert reports_late[0]["failures"] == []  # it waited through the failover for its first token


@pytest.mark.timeout(300)
def test_a_rotating_chain_shared_by_four_processes_survives_a_cluster_primary_killed(
    cluster: RedisClusterGroup, vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    seconds = 16.0
    env = chain_environment(vendor_sandbox, cluster.url, tmp_path)
    procs = start_chain_workers(env, 4, seconds)
    started = time.time()
    time.sleep(max(0.0, started + 4 - time.time()))
    # The primary serving this credential's slot: find it from the chain key the workers wrote.
    chain_keys = wait_chain_key(cluster)
    right_after_a_rotation(vendor_sandbox)
    outages = [cluster.fail_over(chain_keys)]
    reports = reports_of(procs)
    stats = vendor_sandbox.stats().get("oauth2", {})
    print(f"cluster: outage {round(outages[0][1] - outages[0][0], 1)} s, {sum(r['calls'] for r in reports)} calls, "
          f"failures {[len(r['failures']) for r in reports]}, {stats.get('token_requests')} refreshes, "
          f"reuse {stats.get('refresh_reuse', 0)}, slowest call {max(r['slowest'] for r in reports):.2f} s")
    assert presented_twice(vendor_sandbox) == []
    assert stats.get("refresh_reuse", 0) == 0
    assert failures_outside(reports, outages) == [], [r["failures"][:2] for r in reports]
    assert all(r["calls"] > 20 for r in reports)


def wait_chain_key(cluster: RedisClusterGroup) -> str:
    """The chain key the workers wrote (on whichever primary serves its slot)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for port in cluster.primaries():
            found = list(cluster.client(port).scan_iter("vendorauth:*:chain"))
            if found:
                return str(found[0].decode())
        time.sleep(0.1)
    raise AssertionError("no chain key written to the cluster")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Any]]:
    """A redis-server that speaks TLS only and asks clients for a certificate of the sandbox's test CA."""
    from airflow_vendorauth.sandbox.mtls import SandboxPki

    pki = SandboxPki.create(tmp_path_factory.mktemp("redis-pki"))
    servers = RedisProcesses("vendorauth-redis-tls-")
    (port,) = free_ports(1)
    folder = pki.folder
    try:
        process = subprocess.Popen(
            [servers.server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--tls-cert-file", str(folder / "server.pem"), "--tls-key-file", str(folder / "server.key"),
             "--tls-ca-cert-file", pki.ca_bundle, "--tls-auth-clients", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        servers.processes[port] = process
        wait_for("redis answering over TLS", lambda: port_answers(("127.0.0.1", port)), 15)
        yield port, pki
    finally:
        servers.stop()


def test_tls_with_a_ca_bundle_and_a_client_certificate(tls_redis: tuple[int, Any]) -> None:
    from airflow_vendorauth.auth.cipher import TokenCipher
    from airflow_vendorauth.auth.redis_cache import RedisTokenCache
    from tests.unit.test_auth_redis_cache import token

    port, pki = tls_redis
    folder = pki.folder
    cipher = TokenCipher([Fernet.generate_key().decode()])
    url = (f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={pki.ca_bundle}&ssl_certfile={folder / 'client.pem'}"
           f"&ssl_keyfile={folder / 'client.key'}")
    cache = RedisTokenCache(url, cipher)
    assert cache.unreachable() is None
    assert cache.store("tls-k", token("over-tls"))
    assert cache.load("tls-k").access_token == "over-tls"  # type: ignore[union-attr]
    without_certificate = RedisTokenCache(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={pki.ca_bundle}", cipher)
    assert without_certificate.unreachable() is not None  # the server asks for a client certificate
    untrusted = RedisTokenCache(f"rediss://127.0.0.1:{port}/0", cipher)  # the system CAs do not know it
    said = untrusted.unreachable()
    assert said is not None and "certificate verify failed" in said, said


def test_a_cluster_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    """rediss+cluster:// (ElastiCache with cluster mode and in-transit encryption): the nodes speak TLS only,
    to each other too, and ask for a client certificate; the cache's lock, scripts and WAIT work there."""
    from airflow_vendorauth.auth.chain_copy import RefreshChain
    from airflow_vendorauth.auth.cipher import TokenCipher
    from airflow_vendorauth.auth.redis_cache import RedisTokenCache
    from airflow_vendorauth.sandbox.mtls import SandboxPki
    from tests.unit.test_auth_redis_cache import token

    pki = SandboxPki.create(tmp_path / "pki")
    with RedisClusterGroup(tls=pki.folder) as group:
        cache = RedisTokenCache(group.url, TokenCipher([Fernet.generate_key().decode()]))
        assert cache.unreachable() is None
        assert cache.store("tls-k", token("over-tls"))
        assert cache.load("tls-k").access_token == "over-tls"  # type: ignore[union-attr]
        with cache.fetch_lock("tls-k", 5, required=True) as held:
            assert held is not None
            held.fence(1.0)
            held.confirm(2.0)
            held.spend_over()
            assert cache.store_refresh_token("tls-k", RefreshChain("rt-1", 1))  # WAIT on the slot's primary
        found = cache.load_refresh_token("tls-k")
        assert found is not None and found.refresh_token == "rt-1"
