"""The provider on a real CeleryExecutor cluster of processes: PostgreSQL metadata database, Redis broker
and token cache, two Celery workers. One token per credential for the whole run, and a scan that
survives the death of its worker (SIGKILL), retried by Airflow on the other worker from its last page."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.harness import cluster
from tests.services import require_postgres, require_redis

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)  # a CeleryExecutor deployment, two DAGs run twice and a worker killed: about 2.5 min, its own waits allow 7
def test_one_token_per_credential_across_two_workers_and_a_worker_death(
    vendor_sandbox: Sandbox, tmp_path: Path
) -> None:
    require_postgres()
    require_redis()
    import redis

    # Somebody else's keys in the databases the cluster uses: they must survive the run untouched.
    mine = {db: redis.Redis.from_url(cluster.REDIS.format(db=db)) for db in (cluster.BROKER_DB, cluster.CACHE_DB)}
    for client in mine.values():
        client.set("not-vendorauth:keep-me", b"user data")
    before = {db: set(client.scan_iter("*")) for db, client in mine.items()}
    report = cluster.run_cluster(tmp_path, "redis", kill_worker=True, sandbox=vendor_sandbox)
    cluster.print_reports([report])
    for db, client in mine.items():
        assert client.get("not-vendorauth:keep-me") == b"user data"
        assert set(client.scan_iter("*")) == before[db]  # every key the run wrote is gone, no other one
        client.delete("not-vendorauth:keep-me")
    assert report.worker_death["survivors"] == 0  # the killed worker's task processes died with it
    assert report.states == {"talent_pipeline": "success", "vendor_fanout": "success"}, f"logs: {report.logs}"
    for vendor in cluster.VENDORS:
        assert report.tasks[vendor] >= 20
        assert report.stats[vendor]["token_requests"] == 1, vendor  # one token for the whole cluster
    assert set().union(*report.workers.values()) == {"worker1", "worker2"}  # the work really spread
    [quota] = report.quota  # SmartRecruiters' quota, declared, shared by both workers' tasks through Redis
    assert quota["served"] >= 20 and quota["refused_rate"] == quota["refused_at_once"] == 0, quota
    assert report.workers[cluster.QUOTA_VENDOR] == {"worker1", "worker2"}
    death = report.worker_death
    assert death["state"] == "success"
    assert [t[:2] for t in death["tries"]] == [(1, "failed"), (2, "success")]
    assert death["tries"][0][2] == death["killed"] and death["tries"][1][2] != death["killed"]
    assert death["records"] == death["unique"] == death["expected"]  # every record exactly once
    # resumed, not restarted: from the committed page K its log names, fetching only the pages after K
    # (checkpoints are committed every second or few, not after every page: the pages since the last
    # commit before the death are fetched again, nothing more)
    assert death["resumed_from_page"] >= 1
    assert death["scan_requests"] == death["requests_at_kill"] + cluster.SCAN_PAGES - death["resumed_from_page"]
    # nothing left behind: this run's database is dropped and every process stopped (another run's
    # database, say a `make cluster-demo` killed on this machine earlier, is not this run's to judge)
    assert report.database.startswith("vendorauth_cluster_")
    assert report.database not in cluster.admin_postgres_databases()


def test_the_demo_fails_when_a_claim_fails() -> None:
    good = cluster.ClusterReport("redis", states={"vendor_fanout": "success"})
    good.stats = {v: {"token_requests": 1} for v in cluster.VENDORS}
    good.workers = {"kazi": {"worker1", "worker2"}}
    good.quota = [{"served": 30, "refused_rate": 0, "refused_at_once": 0}]
    memory = cluster.ClusterReport("memory", states={"vendor_fanout": "success"})
    memory.stats = {v: {"token_requests": 20} for v in cluster.VENDORS}
    assert cluster.claims(good, memory, kill_worker=False) == []
    good.stats["kazi"]["token_requests"] = 2
    memory.states["vendor_fanout"] = "failed"
    failed = cluster.claims(good, memory, kill_worker=True)
    assert any("kazi: 2 token requests" in f for f in failed)
    assert any("vendor_fanout ended failed" in f for f in failed)
    assert any("worker died ended None" in f for f in failed)
    assert any("did not resume from a committed page" in f for f in failed)
    good.quota[0]["refused_rate"] = 3
    assert any("the quota row: 30 calls served, 3 answered 429" in f for f in cluster.claims(good, memory, kill_worker=False))
