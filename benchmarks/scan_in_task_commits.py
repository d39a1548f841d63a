"""What committing checkpoints off the hot path buys inside a real task (issue 26, first bullet).

VendorApiOperator's own ``execute()`` wall time inside ``dag.test()`` of a DAG file (the real
``task_state_store``, SQLite), each round in a fresh process, against the sandbox answering each page
after 40 ms: 20,000 records, 100 a page, the generic ``oauth2`` connection (4 pages at once at most), the
operator's defaults. Run it with the code to compare on PYTHONPATH (a checkout of the commit before):

    PYTHONPATH=. python benchmarks/scan_in_task_commits.py 5
    PYTHONPATH=/path/to/older/checkout python benchmarks/scan_in_task_commits.py 5

The floor is 200 pages x 40 ms / 4 at once = 2.0 s. It exits non-zero when a round did not write the
20,000 records (nothing ran is not a measurement).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from airflow_vendorauth.sandbox.client import Sandbox

DAG = textwrap.dedent('''
    import json, os, time
    import pendulum
    from airflow.sdk import dag
    from airflow_vendorauth.operators.api import VendorApiOperator

    class Timed(VendorApiOperator):
        def execute(self, context):
            started = time.perf_counter()
            result = super().execute(context)
            with open(os.environ["TIME_OUT"], "w") as out:
                json.dump({"seconds": time.perf_counter() - started, "result": result}, out)
            return result

    @dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
    def scan_in_task():
        Timed(task_id="scan", conn_id="oauth2_default", endpoint="/items", output_path=os.environ["OUT"])

    scan_in_task()
''')
RUN = (
    "import sys\nfrom airflow.dag_processing.dagbag import DagBag\nbag = DagBag(dag_folder=sys.argv[1])\n"
    "assert not bag.import_errors, bag.import_errors\nassert bag.dags['scan_in_task'].test().state == 'success'\n"
)


def main(rounds: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="i22-scan-"))
    (home / "dags").mkdir()
    (home / "dags" / "scan_in_task.py").write_text(DAG)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags")}
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=env)
    with Sandbox(log_path=home / "sandbox.log") as sandbox:
        conns = sandbox.environment()
        conn = json.loads(conns["AIRFLOW_CONN_OAUTH2_DEFAULT"])
        conn["extra"]["pagination"]["page_size"] = 100
        conns["AIRFLOW_CONN_OAUTH2_DEFAULT"] = json.dumps(conn)
        times = []
        for n in range(rounds):
            sandbox.reset()
            sandbox.configure(sizes={"oauth2.items": 20000})
            sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=40)
            out = home / f"items-{n}.jsonl"
            e = {**env, **conns, "OUT": str(out), "TIME_OUT": str(home / "t.json")}
            done = subprocess.run([sys.executable, "-c", RUN, str(home / "dags")], capture_output=True, text=True, env=e)
            if done.returncode != 0:
                raise SystemExit(f"round {n}: the task did not run: {done.stderr[-3000:]}")
            t = json.loads((home / "t.json").read_text())
            lines = sum(1 for _ in out.open())
            if not lines == t["result"]["records"] == 20000:
                raise SystemExit(f"round {n}: {lines} lines, summary {t['result']}: not the 20,000 records")
            times.append(t["seconds"])
            print(f"round {n}: execute() {t['seconds']:.2f} s, {lines} records", flush=True)
    times.sort()
    print(f"median {times[len(times) // 2]:.2f} s over {rounds} rounds")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
