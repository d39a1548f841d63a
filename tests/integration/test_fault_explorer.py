"""The fault explorer's fixed seeds (issue 31): each a schedule of compound faults against real task
processes, the sandbox's token server and API, a redis-server of its own and real scans through dag.test(),
with every invariant of tests/explorer/invariants.py checked after it. ``make chaos`` explores further.

The seeds were chosen so that, together, they walk every kind of step: Redis restarted empty (and a
lease gone) while workers refresh, SIGTERM and SIGKILL mid-rotation, cancelled waiters, token endpoint
faults that leave a spend in doubt (with and without the server's reuse interval), Test pressed from a
process without the workers' file cache, scans stopped mid-page and cleared with another filter and paging,
and the API's quota declared beside them (seeds 51 and 6).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.explorer.explore import run_seed
from tests.explorer.schedule import Schedule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

#: seed -> what its schedule walks (checked below, so that a change of the generator cannot empty it).
SEEDS = {
    51: {"restart_redis", "press_test", "scan:clear-changed", "scan:sigterm-mid-page", "sigterm"},
    11: {"restart_redis", "sigkill", "token_fault:lost-502", "token_fault:timeout"},
    23: {"expire_lock", "sigkill", "sigterm", "token_fault:500"},
    6: {"press_test", "scan:clear-changed", "scan:plain", "sigterm", "token_fault:timeout"},
    54: {"expire_lock", "restart_redis", "scan:sigterm-mid-page", "token_fault:timeout"},
}


def walked(schedule: Schedule) -> set[str]:
    return {s.kind + (f":{s.fault}" if s.fault else "") for s in schedule.steps}


def test_the_fixed_seeds_walk_every_kind_of_step() -> None:
    for seed, kinds in SEEDS.items():
        assert kinds <= walked(Schedule.from_seed(seed)), (seed, walked(Schedule.from_seed(seed)))
    every = set().union(*(walked(Schedule.from_seed(seed)) for seed in SEEDS))
    backends = {Schedule.from_seed(seed).backend for seed in SEEDS}
    assert {"restart_redis", "expire_lock", "sigterm", "sigkill", "press_test"} <= every and backends == {"redis", "file"}
    # the API's quota declared, on each backend (51: Redis restarted; 6: Test pressed with the file cache)
    assert {Schedule.from_seed(seed).backend for seed in SEEDS if Schedule.from_seed(seed).quota} == {"redis", "file"}


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_a_schedule_of_compound_faults_breaks_no_invariant(
    seed: int, vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path
) -> None:
    verdict = run_seed(vendor_sandbox, seed, tmp_path)
    print(verdict.report())
    assert not verdict.broken, verdict.report() + f"\n(replay: make chaos CHAOS_SEED={seed}; folder {tmp_path})"
