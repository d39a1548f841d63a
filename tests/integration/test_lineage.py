"""Lineage through real Airflow: the OpenLineage provider (installed by the dev group) with its file
transport records the example pipeline's START and COMPLETE events through ``dag.test()``; and a real
deployment's scheduler starts a DAG scheduled on an output's asset, whose task reads the output's figures
from ``triggering_asset_events``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.harness.deployment import Deployment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: dag.test() of the example pipeline, as tests/integration/test_example_dags.py runs it.
DAG_TEST = """
import os, sys
import pendulum
from tests.integration.conftest import dagbag

folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
sys.path.insert(0, folder)  # the example DAGs import _common
bag = dagbag(dag_folder=os.path.join(folder, "talent_pipeline.py"))
run = bag.get_dag("talent_pipeline").test(logical_date=pendulum.datetime(2026, 11, 24, tz="UTC"))
print("dag.test() ended:", run.state)
"""


def openlineage_env(events: Path) -> dict[str, str]:
    """Airflow's OpenLineage provider on, writing every event as a line of ``events``."""
    return {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "vendorauth-test",
    }


def read_events(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """task_id -> event type -> the task's last event of that type."""
    tasks: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        event = json.loads(line)
        dag_and_task = event["job"]["name"].split(".", 1)
        if len(dag_and_task) == 2:
            tasks[dag_and_task[1]][event["eventType"]] = event
    return tasks


def datasets(event: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event[kind]]


def secrets_of(sandbox: Sandbox) -> set[str]:
    """Every token the sandbox issued and every secret, key and password of its connections."""
    credentials = sandbox.credentials
    return set(sandbox.issued_tokens()) | set(credentials.secrets()) | {credentials.keyavi_caller_id}


@pytest.mark.timeout(600)  # a dag.test() process: its own wait allows 9 min
def test_dag_test_of_the_example_pipeline_writes_lineage_events_with_figures_and_no_secret(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path
) -> None:
    data, events_file = tmp_path / "data", tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        **openlineage_env(events_file),
        "VENDORAUTH_DATA_DIR": str(data),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    # dag.test() in a fresh process: the provider reads its settings once per process
    run = subprocess.run([sys.executable, "-c", DAG_TEST], cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert run.returncode == 0 and "dag.test() ended: success" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    day = data / "2026-11-24"
    api = urlsplit(vendor_sandbox.url)
    origin = f"{api.scheme}://{api.netloc}"
    tasks = read_events(events_file)

    for task_id, endpoint, output in (
        ("smartrecruiters_jobs", "/smartrecruiters/jobs", day / "smartrecruiters" / "jobs.jsonl"),
        ("smartrecruiters_candidates", "/smartrecruiters/candidates", day / "smartrecruiters" / "candidates.jsonl"),
    ):
        start, complete = tasks[task_id]["START"], tasks[task_id]["COMPLETE"]
        for event in (start, complete):
            assert datasets(event, "inputs") == [(origin, endpoint)], task_id
            assert datasets(event, "outputs") == [("file", str(output))], task_id
        assert start["outputs"][0]["outputFacets"] == {}
        records = sum(1 for _ in output.open())
        statistics = complete["outputs"][0]["outputFacets"]["outputStatistics"]
        assert (statistics["rowCount"], statistics["size"]) == (records, output.stat().st_size), task_id
        facet = complete["run"]["facets"]["vendorauth"]
        assert (facet["vendor"], facet["records"]) == ("SmartRecruiters", records) and facet["pages"] >= 1

    scan = tasks["kazi_job_scan"]["COMPLETE"]
    assert datasets(scan, "inputs") == [
        (origin, "/kazi/tagging/v2/job-scans"),
        ("file", str(day / "smartrecruiters" / "jobs.jsonl")),
    ]
    assert datasets(scan, "outputs") == [("file", str(day / "kazi" / "job_scan.jsonl"))]
    assert scan["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 120
    facet = scan["run"]["facets"]["vendorauth"]
    assert (facet["vendor"], facet["scanType"], facet["records"]) == ("Kazi", "job", 120)
    assert facet["scanId"].startswith("job-scan-")

    text = events_file.read_text()
    tokens = set(vendor_sandbox.issued_tokens())
    assert len(tokens) >= 2, "the run fetched tokens (SmartRecruiters and Kazi)"
    leaked = sorted(needle[:6] + "..." for needle in secrets_of(vendor_sandbox) if needle in text)
    assert leaked == [], f"secrets in the OpenLineage events: {leaked}"
    assert "eyJ" not in text and "Bearer" not in text


def wait_for_first_run(deployment: Deployment, dag_id: str, timeout: float = 180) -> str:
    """The run the scheduler made for ``dag_id`` (asset-triggered), once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = deployment.query("SELECT run_id FROM dag_run WHERE dag_id = :d", d=dag_id)
        if rows:
            return deployment.wait_for_run(dag_id, rows[0][0], timeout=max(1, deadline - time.monotonic()))
        time.sleep(1)
    raise TimeoutError(f"the scheduler made no run of {dag_id} in {timeout} s; logs in {deployment.logs}")


@pytest.mark.timeout(600)  # a LocalExecutor deployment runs two DAGs: its own waits allow 8 min
def test_a_dag_scheduled_on_the_outputs_reads_their_figures_from_the_asset_events(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    data, events_file = tmp_path / "data", tmp_path / "openlineage.jsonl"
    env = {**sandbox_connections, **openlineage_env(events_file), "VENDORAUTH_DATA_DIR": str(data)}
    deployment = Deployment(
        root=tmp_path / "deployment", extra_env=env, dag_files=[ROOT / "tests" / "dags" / "lineage_assets.py"]
    )
    with deployment:
        deployment.trigger("lineage_upstream", "upstream-1")
        upstream = deployment.wait_for_run("lineage_upstream", "upstream-1", timeout=240)
        downstream = wait_for_first_run(deployment, "lineage_downstream") if upstream == "success" else None
        rows = deployment.query(
            "SELECT value FROM xcom WHERE dag_id = 'lineage_downstream' AND task_id = 'read_figures' AND key = 'return_value'"
        )
    assert (upstream, downstream) == ("success", "success"), f"logs: {deployment.logs}"
    figures = json.loads(rows[0][0])
    figures = json.loads(figures) if isinstance(figures, str) else figures

    run_dir = data / "upstream-1"
    jobs, scan = run_dir / "jobs.jsonl", run_dir / "job_scan.jsonl"
    by_path = {extra["path"]: extra for extra in figures.values()}
    assert set(by_path) == {str(jobs), str(scan)}
    for output in (jobs, scan):
        extra = by_path[str(output)]
        assert extra["records"] == sum(1 for _ in output.open()) == 120
        assert extra["bytes"] == output.stat().st_size and extra["pages"] >= 1
    assert by_path[str(scan)]["scan_id"].startswith("job-scan-")
    assert all("*" in uri for uri in figures)  # keyed by the declared assets (templated parts as *)

    # the same run, seen by the OpenLineage provider in the workers' task processes
    complete = read_events(events_file)["jobs"]["COMPLETE"]
    assert complete["outputs"][0]["name"] == str(jobs)
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 120
