"""``make chaos``: explore fault schedules for a while. Not collected by ``make test`` (not a test_ file).

``CHAOS_SECONDS`` (default 600): how long to explore, one seed after another from ``CHAOS_FIRST_SEED``
(default: drawn from the clock, printed). ``CHAOS_SEED``: replay this one seed's schedule instead. Every
schedule's verdict is printed as it ends; broken ones keep their folder (journals, logs) under
``CHAOS_DIR`` (default /tmp/vendorauth-chaos) and are listed with their seeds at the end.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.explorer.explore import run_seed

#: pytest-timeout's per-test limit, stretched to the exploration asked for (and a last schedule).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(int(float(os.environ.get("CHAOS_SECONDS", "600"))) + 600)]


def test_explore(vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str) -> None:
    folder = Path(os.environ.get("CHAOS_DIR", "/tmp/vendorauth-chaos"))
    if os.environ.get("CHAOS_SEED"):
        seeds = iter([int(os.environ["CHAOS_SEED"])])
        deadline = float("inf")
    else:
        first = int(os.environ.get("CHAOS_FIRST_SEED") or random.SystemRandom().randrange(10**6))
        print(f"exploring from seed {first} for {os.environ.get('CHAOS_SECONDS', '600')} s", flush=True)
        seeds = iter(range(first, first + 10**9))
        deadline = time.monotonic() + float(os.environ.get("CHAOS_SECONDS", "600"))
    broken, ran = [], 0
    for seed in seeds:
        verdict = run_seed(vendor_sandbox, seed, folder)
        ran += 1
        print(verdict.report(), flush=True)
        if verdict.broken:
            broken.append(seed)
        if time.monotonic() >= deadline:
            break
    print(f"\n{ran} schedules explored; broken: {broken or 'none'}"
          + (f"\nreplay one: make chaos CHAOS_SEED={broken[0]}" if broken else ""), flush=True)
    assert not broken, f"invariants broken by seeds {broken} (folders under {folder})"
