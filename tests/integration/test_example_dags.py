"""The example DAGs load without import errors and run end to end with dag.test() against the sandbox."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from airflow_vendorauth.sandbox.client import Sandbox

pytestmark = pytest.mark.integration

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
EXAMPLES = ["talent_pipeline", "keyavi_payloads", "kayzen_campaigns", "clazar_listings", "oauth2_items"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vendorauth-data")


@pytest.fixture(scope="module")
def dagbag(data_dir: Path, airflow_db: str):  # type: ignore[no-untyped-def]
    from tests.integration.conftest import dagbag as make_dagbag

    previous = os.environ.get("VENDORAUTH_DATA_DIR")
    os.environ["VENDORAUTH_DATA_DIR"] = str(data_dir)  # read when the DAG files are parsed
    sys.path.insert(0, str(DAGS_FOLDER))
    sys.modules.pop("_common", None)  # an earlier dag.test() may have imported it with another data folder
    try:
        yield make_dagbag(dag_folder=str(DAGS_FOLDER))
    finally:
        if previous is None:
            os.environ.pop("VENDORAUTH_DATA_DIR", None)
        else:
            os.environ["VENDORAUTH_DATA_DIR"] = previous


def test_example_dags_load_without_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert set(EXAMPLES) <= set(dagbag.dag_ids)
    for dag_id in EXAMPLES:
        dag = dagbag.get_dag(dag_id)
        assert dag.catchup is False and dag.timetable is not None
        assert all(task.retries >= 1 for task in dag.tasks)


def line_count(path: Path) -> int:
    return sum(1 for _ in path.open())


@pytest.mark.parametrize("dag_id", EXAMPLES)
def test_example_dag_runs_against_the_sandbox(
    dag_id: str,
    dagbag,
    data_dir: Path,
    airflow_db: str,
    vendor_sandbox: Sandbox,
    sandbox_connections: dict,  # type: ignore[no-untyped-def]
) -> None:
    import pendulum

    run = dagbag.get_dag(dag_id).test(logical_date=pendulum.datetime(2026, 11, 24, tz="UTC"))
    assert run.state == "success"
    assert vendor_sandbox.stats(), "the DAG made no call to the sandbox"
    day = data_dir / "2026-11-24"
    sizes = {
        "smartrecruiters/jobs.jsonl": 120,
        "smartrecruiters/candidates.jsonl": 240,
        "kazi/job_scan.jsonl": 120,
        "kazi/talent_scan.jsonl": 240,
        "keyavi/protected_payloads.jsonl": 100,
        "kayzen/campaigns.jsonl": 250,
        "kayzen/campaign_performance.jsonl": 400,
        "clazar/listings.jsonl": 150,
        "oauth2/items.jsonl": 230,
    }
    vendors = {
        "talent_pipeline": ("smartrecruiters", "kazi"),
        "keyavi_payloads": ("keyavi",),
        "kayzen_campaigns": ("kayzen",),
        "clazar_listings": ("clazar",),
        "oauth2_items": ("oauth2",),
    }[dag_id]
    written = {str(p.relative_to(day)): line_count(p) for p in day.rglob("*.jsonl") if p.parent.name in vendors}
    assert written, "the DAG wrote no output"
    for name, count in written.items():
        assert count == sizes[name], name
    assert not list(day.rglob("*.partial"))
    first = json.loads(next(iter(day.rglob("*.jsonl"))).open().readline())
    assert isinstance(first, dict)


def test_scan_output_is_the_xcom_arg_downstream_tasks_take(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk import XComArg

    dag = dagbag.get_dag("oauth2_items")
    scan = dag.get_task("items")
    assert isinstance(scan.output, XComArg)
    assert scan.output_path.endswith("/oauth2/items.jsonl")
    assert dag.get_task("count_tags").upstream_task_ids == {"items"}  # wired through scan.output


def test_output_is_refused_with_the_new_name() -> None:
    from airflow_vendorauth.operators.api import VendorApiOperator

    with pytest.raises(TypeError, match="output_path="):
        VendorApiOperator(task_id="x", conn_id="c", endpoint="/e", output="/tmp/x.jsonl")
