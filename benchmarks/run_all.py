"""`make bench`: every benchmark in one run, side by side; the tables are printed and saved to
benchmarks/results.md (the README quotes them).

A benchmark whose measurement did not happen as described (a process died, no request reached the API,
no sample was taken) raises :class:`harness.NothingRan`: its section says why instead of showing figures,
the others still run, and `make bench` exits non-zero naming it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import ceiling
import import_time
import inside_task
import mapped
import per_call
import quota_correction_model
import quotas
import scan
import token_requests
import triggerer
from harness import NothingRan

BENCHMARKS: list[tuple[str, Callable[[], str]]] = [
    ("per_call", per_call.main),
    ("inside_task", inside_task.main),
    ("ceiling", ceiling.main),
    ("scan", scan.main),
    ("import_time", import_time.main),
    ("token_requests", token_requests.main),
    ("triggerer", triggerer.main),
    ("mapped", mapped.main),
    ("quotas", quotas.main),
    ("quota_correction_model", quota_correction_model.main),
]


def provenance() -> str:
    """Which code and when: the README quotes one run of the final code, and says which."""
    import datetime
    import os
    import subprocess

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = " with uncommitted changes" if git("status", "--porcelain", "--", "../airflow_vendorauth", ".") else ""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"commit {commit}{changed}, started {now}, load average {os.getloadavg()[0]:.1f}"


def main(benchmarks: list[tuple[str, Callable[[], str]]] = BENCHMARKS, out: Path | None = None) -> int:
    started, where = time.monotonic(), provenance()
    sections, failed = [], []
    for name, run in benchmarks:
        print(f"\n# {name}", flush=True)
        try:
            sections.append(run())
        except NothingRan as reason:
            failed.append(name)
            sections.append(f"\n## {name}: NOT MEASURED\n\n{reason}")
            print(f"{name}: NOT MEASURED: {reason}", file=sys.stderr, flush=True)
    minutes = (time.monotonic() - started) / 60
    out = out or Path(__file__).with_name("results.md")
    header = (
        "# Benchmark results (`make bench`)\n\n"
        f"One run of `make bench` ({minutes:.0f} min; {where}) on this project's shared 2-core development machine; "
        "ratios come from interleaved rounds, absolute times move with the machine's load.\n"
    )
    out.write_text(header + "\n".join(sections) + "\n")
    print(f"\nSaved to {out} ({minutes:.0f} min)")
    if failed:
        print(f"Not measured: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
