"""The shared quota survives the Redis failovers the tokens survive (issue 33, for the quota of issue 34):
task processes scanning with declared limits through a Sentinel group and a Redis Cluster of the test's
own (``tests/redis_topologies.py``), the primary holding the quota SIGKILLed mid-run.

Each test: four processes (``tests/harness/quota_scan.py``, ``OAuth2Hook.paginate``, ``concurrency="auto"``)
scan the sandbox's ``/items`` under a quota the sandbox enforces per credential (25 requests a second, 4 at
once, 150 ms a request: both limits bind) and the connection declares. While they run the sandbox's 429s
are sampled every 0.1 s; a thread kills the primary. Asserted: every process ends with all its records,
once and in order; no 429 before the kill nor after the failover plus :data:`GRACE_SECONDS`; at most
:data:`FAILOVER_429_BUDGET` inside it, each retried; and the permits after the grace come from the new
primary (the quota's sliding window there counts permits past the grace). With the Cluster, the quota's three keys
are checked to share the slot whose primary is killed.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.harness import quota_scan
from tests.harness.quota_scan import Round, run_round
from tests.redis_topologies import RedisClusterGroup, SentinelGroup

pytestmark = pytest.mark.integration

PROCESSES = 4
PAGES = 100  # per process, 100 records a page: 400 requests, a floor of 16 s at 25 a second
RECORDS = PAGES * 100
DECLARED = {"rate_limit": "25/second", "max_in_flight": 4}
KILL_AT = 2.5  # seconds into the scans
#: After a failover a process that fell back to its share (the store unreachable) asks the store again
#: within 5 s (``RETRY_STORE_SECONDS``); then the shared state rules alone. One second more for the
#: rate's window to settle.
GRACE_SECONDS = 6.0
#: 429s ("4 at once") the fallback share may draw inside the failover, each retried after its Retry-After:
#: at the kill, requests still running on the old primary's leases beside each process's first requests on
#: its share (1 at once); 5 s later, requests still running on the share beside the first ones the new
#: primary grants. Measured on a loaded 2-core machine: 1 to 31 of some 420 requests (up to 16 threads of
#: ``concurrency="auto"`` per process refused once at each switch), none before the kill or after the grace.
FAILOVER_429_BUDGET = 48
#: What the failover may add to the scans beyond its outage: the share's pace (four processes of 6 a
#: second, 1 at once each) for the 5 s until the store is asked again, and the retried 429s' Retry-After.
#: Leases the old primary held, counted in flight on the new one until they expire (the connection's
#: timeout plus 5 s: 35 s), would stall the credential far longer.
EXTRA_SECONDS = 8.0


@pytest.fixture
def quota_api(vendor_sandbox: Sandbox, sandbox_connections: dict) -> Iterator[Sandbox]:
    vendor_sandbox.configure(sizes={"oauth2.items": RECORDS})
    vendor_sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=150)
    vendor_sandbox.add_quota(vendor="oauth2", route="/items", rates=["25/second"], max_in_flight=4)
    yield vendor_sandbox


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[str]]]:
    """The scanning processes ``run_round`` starts, killed at the end if still running (a failed test)."""
    started: list[subprocess.Popen[str]] = []
    popen = subprocess.Popen

    def tracked(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        child = popen(*args, **kwargs)
        if "tests.harness.quota_scan" in args[0]:  # not the redis-servers a failover restarts
            started.append(child)
        return child

    monkeypatch.setattr(quota_scan.subprocess, "Popen", tracked)
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
            child.wait(10)


@pytest.fixture
def sentinel() -> Iterator[SentinelGroup]:
    with SentinelGroup() as group:
        yield group


@pytest.fixture
def cluster() -> Iterator[RedisClusterGroup]:
    with RedisClusterGroup() as group:
        yield group


class FailoverRun:
    """What ``during`` saw: the sandbox's refusals over time, the failover's times, the quota's sliding
    window read from the primary after the grace."""

    def __init__(self, sandbox: Sandbox, fail_over: Callable[[], tuple[float, float]],
                 quota_tat: Callable[[], float | None]) -> None:
        self.sandbox, self._fail_over, self._quota_tat = sandbox, fail_over, quota_tat
        self.samples: list[tuple[float, int]] = []  # (epoch, 429s so far)
        self.outage: tuple[float, float] | None = None
        self.error: BaseException | None = None
        self.tat_after_grace: float | None = None
        self._thread: threading.Thread | None = None

    def refused(self) -> int:
        [rule] = self.sandbox.quotas()
        return int(rule["refused_rate"]) + int(rule["refused_at_once"])

    def _run_failover(self) -> None:
        try:
            self.outage = self._fail_over()
        except BaseException as exc:  # noqa: BLE001 - said by the test
            self.error = exc

    def during(self, elapsed: float) -> None:
        self.samples.append((time.time(), self.refused()))
        if elapsed >= KILL_AT and self._thread is None:
            self._thread = threading.Thread(target=self._run_failover, daemon=True)
            self._thread.start()
        if self.outage is not None and time.time() > self.outage[1] + GRACE_SECONDS:
            try:
                tat = self._quota_tat()
            except Exception:  # noqa: BLE001 - read again at the next sample
                tat = None
            if tat is not None:
                self.tat_after_grace = max(self.tat_after_grace or 0.0, tat)

    def finish(self) -> tuple[float, float]:
        assert self._thread is not None, "the scans ended before the kill"
        self._thread.join(60)
        assert self.error is None, self.error
        assert self.outage is not None
        self.samples.append((time.time(), self.refused()))
        return self.outage

    def refused_before(self, at: float) -> int:
        return max((n for t, n in self.samples if t <= at), default=0)

    def refused_after(self, at: float) -> int:
        since = min((n for t, n in self.samples if t >= at), default=self.samples[-1][1])
        return self.samples[-1][1] - since


def check(done: Round, run: FailoverRun, outage: tuple[float, float], label: str) -> None:
    killed, back = outage
    ended = max(r.get("ended_at", 0.0) for r in done.results)
    inside = run.refused_after(killed) - run.refused_after(back + GRACE_SECONDS)
    print(f"{label}: outage {back - killed:.1f} s, scans {done.seconds:.1f} s (ended {ended - back:.1f} s after "
          f"the failover), {done.api_requests} requests, 429: before {run.refused_before(killed)}, inside {inside}, "
          f"after the grace {run.refused_after(back + GRACE_SECONDS)}, retries {[r.get('retries') for r in done.results]}, "
          f"quota waits {[r.get('quota_waits') for r in done.results]}, stats {done.stats}")
    changes = [(round(t - killed, 1), n) for (t, n), (_, before) in zip(run.samples[1:], run.samples, strict=False) if n != before]
    print(f"{label}: 429s so far, by seconds since the kill: {changes}")
    assert done.failed == [], done.failed
    assert all(r["complete"] and r["records"] == RECORDS for r in done.results)  # every record, once, in order
    floor = PROCESSES * PAGES / 25
    assert done.seconds < floor + (back - killed) + EXTRA_SECONDS, "the quota stalled after the failover"
    assert ended > back + GRACE_SECONDS + 2, "the scans did not run on long enough past the grace"
    assert run.refused_before(killed) == 0, run.samples
    assert run.refused_after(back + GRACE_SECONDS) == 0, run.samples
    assert inside <= FAILOVER_429_BUDGET, f"{inside} 429s inside the failover"
    assert done.answered_429 <= sum(r["retries"] for r in done.results)  # every 429 retried
    # the permits after the grace came from the new primary: its window counted permits past the grace
    assert run.tat_after_grace is not None and run.tat_after_grace > back + GRACE_SECONDS + 1, (
        f"no permit from the new primary after the grace (its latest bucket began at {run.tat_after_grace})")


def quota_tat_on(client: Any) -> float | None:
    """When the latest bucket of the quota's sliding windows that counted a permit began (epoch seconds)."""
    from airflow_vendorauth.quota.spec import Rate
    from airflow_vendorauth.quota.state import BUCKETS

    latest: list[float] = []
    for key in client.scan_iter("vendorauth:{*}:quota:window"):
        for name, buckets in client.hgetall(key).items():
            width = Rate.parse(name.decode()).period / BUCKETS
            latest += [int(entry.split(b":")[0]) * width for entry in buckets.split()]
    return max(latest, default=None)


@pytest.mark.timeout(120)
def test_the_quota_holds_through_a_sentinel_failover(
    quota_api: Sandbox, sentinel: SentinelGroup, scans: list[subprocess.Popen[str]]
) -> None:
    run = FailoverRun(quota_api, sentinel.fail_over, lambda: quota_tat_on(sentinel.client(sentinel.primary())))
    done = run_round(quota_api, processes=PROCESSES, how="hook", records=RECORDS, extra=DECLARED,
                     token_cache=sentinel.url, during=run.during)
    check(done, run, run.finish(), "sentinel")


@pytest.mark.timeout(120)
def test_the_quota_holds_through_a_cluster_primary_killed(
    quota_api: Sandbox, cluster: RedisClusterGroup, scans: list[subprocess.Popen[str]]
) -> None:
    slots: list[int] = []
    primaries: list[int] = []

    def fail_over() -> tuple[float, float]:
        client = cluster.client(cluster.primaries()[0])
        keys = [k.decode() for p in cluster.primaries() for k in cluster.client(p).scan_iter("vendorauth:{*}:quota:window")]
        assert len(keys) == 1, f"the quota's keys in the cluster: {keys}"
        tat = keys[0]
        base = tat.removesuffix("window")
        slots.extend(int(client.execute_command("CLUSTER", "KEYSLOT", base + kind)) for kind in ("window", "leases", "state"))
        primaries.append(cluster.primary_of(tat))
        outage = cluster.fail_over(tat)
        primaries.append(cluster.primary_of(tat))
        return outage

    def tat_now() -> float | None:  # on whichever primary holds the key (SCAN is per node)
        return max((t for p in cluster.primaries() if (t := quota_tat_on(cluster.client(p))) is not None), default=None)

    run = FailoverRun(quota_api, fail_over, tat_now)
    done = run_round(quota_api, processes=PROCESSES, how="hook", records=RECORDS, extra=DECLARED,
                     token_cache=cluster.url, during=run.during)
    outage = run.finish()
    assert len(set(slots)) == 1, slots  # the quota's keys share the slot whose primary was killed
    assert len(set(primaries)) == 2, primaries  # and its replica serves it now
    check(done, run, outage, "cluster")
