"""What one checkpoint commit costs inside a real task, and so how often a scan may commit.

A DAG file whose task commits a checkpoint-sized value to ``task_state_store`` COMMITS times, timing each
``set`` with ``time.perf_counter()``; run with ``dag.test()`` of that file (the real task state store: the
task API and the metadata database, here SQLite in a throw-away AIRFLOW_HOME) in a fresh process.
The scan's commit interval (``operators/streaming.py``: ``COMMIT_SHARE``) is chosen from this figure:
commits may take at most that share of a commit thread's time.

    python benchmarks/checkpoint_commit.py            # prints the table; exit 1 if no commit was timed
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from harness import ROOT, median, table

COMMITS = 100

DAG_FILE = textwrap.dedent(
    '''
    import json, os, time
    import pendulum
    from airflow.sdk import dag, task

    @dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
    def checkpoint_commit():
        @task
        def commit(**context):
            store = context["task_state_store"]
            value = {"bytes_written": 123456789, "records": 1234567, "pages": 12345, "tail_sha256": "ab" * 32,
                     "next_request": {"params": {"page": 12346, "per_page": 100}, "url": None, "size": 100}}
            times = []
            for n in range(int(os.environ["COMMITS"])):
                value["pages"] = n
                started = time.perf_counter()
                store.set("vendorauth_checkpoint", value)
                times.append(time.perf_counter() - started)
            store.delete("vendorauth_checkpoint")
            with open(os.environ["TIMES_OUT"], "w") as out:
                json.dump(times, out)

        commit()

    checkpoint_commit()
    '''
)

RUN = textwrap.dedent(
    """
    import sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    assert not bag.import_errors, bag.import_errors
    run = bag.dags["checkpoint_commit"].test()
    assert run.state == "success", run.state
    """
)


def measure() -> list[float]:
    home = Path(tempfile.mkdtemp(prefix="vendorauth-bench-commit-"))
    dags = home / "dags"
    dags.mkdir()
    (dags / "checkpoint_commit.py").write_text(DAG_FILE)
    out = home / "times.json"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "COMMITS": str(COMMITS),
        "TIMES_OUT": str(out),
        "PYTHONPATH": str(ROOT),
    }
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=env, timeout=600)
    done = subprocess.run([sys.executable, "-c", RUN, str(dags)], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"the task did not run: {done.stderr[-2000:]}")
    times: list[float] = json.loads(out.read_text())
    if len(times) != COMMITS:
        raise SystemExit(f"{len(times)} commits timed, {COMMITS} expected")
    return times


def main() -> str:
    times = sorted(measure())
    p90 = times[int(0.9 * (len(times) - 1))]
    return table(
        "One checkpoint commit to task_state_store inside a real task (dag.test(), SQLite)",
        ["commits", "median ms", "p90 ms", "max ms"],
        [[len(times), f"{median(times) * 1000:.1f}", f"{p90 * 1000:.1f}", f"{times[-1] * 1000:.1f}"]],
    )


if __name__ == "__main__":
    main()
