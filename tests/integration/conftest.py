"""Integration fixtures: a migrated SQLite metadata database for real Airflow runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """`airflow db migrate` on the test AIRFLOW_HOME (SQLite), once per session."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return os.environ["AIRFLOW_HOME"]


TEST_DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def load_test_dag(dag_id: str, monkeypatch: pytest.MonkeyPatch, **env: str):  # type: ignore[no-untyped-def]
    """Parse a DAG file of tests/dags with the given environment (the files read settings at parse time)."""
    from airflow.dag_processing.dagbag import DagBag

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(TEST_DAGS / f"{dag_id}.py"))
    assert bag.import_errors == {}, bag.import_errors
    assert dag_id in bag.dags, (str(TEST_DAGS), os.listdir(TEST_DAGS), bag.dag_ids)
    return bag.dags[dag_id]


def tune_connections(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], **extras: object) -> None:
    """Change extras (timeout, max_retries, token_cache...) of every sandbox connection."""
    import json

    for name, value in environment.items():
        conn = json.loads(value)
        conn["extra"].update(extras)
        monkeypatch.setenv(name, json.dumps(conn))
