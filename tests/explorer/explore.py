"""Run schedules and check their invariants: a fixed list of seeds (``make test``), or as many seeds as fit
in a given time (``make chaos``), each failure printed with the seed that replays its schedule."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from airflow_vendorauth.sandbox.client import Sandbox
from tests.explorer.invariants import check, excused
from tests.explorer.schedule import Schedule
from tests.explorer.world import Outcome, World


@dataclass
class Verdict:
    schedule: Schedule
    broken: list[str]
    outcome: Outcome
    seconds: float

    def report(self) -> str:
        o = self.outcome
        calls = sum(1 for e in o.journal if e["kind"] == "ok")
        failed = sum(1 for e in o.journal if e["kind"] == "failed")
        head = (
            f"{'BROKEN' if self.broken else 'held'}: {self.schedule.describe()}\n"
            f"  -> {calls} calls, {failed} failed, {len(o.refresh_log)} refresh tokens presented "
            f"(reuse {o.stats.get('refresh_reuse', 0)}), final check {'ok' if o.final.get('ok') else o.final.get('message', '')[:160]}"
            f", {self.seconds:.0f} s"
        )
        return "\n".join([head, *(f"  (excused) {e}" for e in excused(o)), *(f"  !! {b}" for b in self.broken)])


def run_seed(sandbox: Sandbox, seed: int, folder: Path, *, scans: bool = True) -> Verdict:
    schedule = Schedule.from_seed(seed, scans=scans)
    if os.environ.get("CHAOS_QUOTA") in ("0", "1"):  # replay a seed found before quotas as it ran then (0)
        schedule = dataclasses.replace(schedule, quota=os.environ["CHAOS_QUOTA"] == "1")
    started = time.monotonic()
    outcome = World(sandbox, schedule, folder / f"seed-{seed}").run()
    verdict = Verdict(schedule, check(outcome), outcome, time.monotonic() - started)
    if verdict.broken or os.environ.get("CHAOS_KEEP"):  # kept for the post-mortem: what happened, what the server saw
        (folder / f"seed-{seed}" / "outcome.json").write_text(json.dumps(dataclasses.asdict(outcome), indent=1, default=str))
    else:
        shutil.rmtree(folder / f"seed-{seed}", ignore_errors=True)
    return verdict
