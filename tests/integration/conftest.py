"""Integration helpers: Airflow's DagBag, test DAGs parsed with an environment, tuned sandbox connections."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# airflow_db (the test AIRFLOW_HOME migrated once per session) comes from the provider's pytest plugin,
# which also sets AIRFLOW__CORE__DAGS_FOLDER, after this module is imported: read it when used.


def dagbag(**kwargs):  # type: ignore[no-untyped-def]
    """Airflow's DagBag, where this Airflow keeps it (3.3: airflow.dag_processing; 3.1, 3.2: airflow.models)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1, 3.2: dag.test() also wants the DAGs serialized in the database first
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[attr-defined,no-redef]

        DagBundlesManager().sync_bundles_to_db()  # the "dags-folder" bundle the DAGs belong to
        bag = DagBag(**kwargs)
        sync_bag_to_db(bag, "dags-folder", None)
        return bag
    return DagBag(**kwargs)


def load_test_dag(dag_id: str, monkeypatch: pytest.MonkeyPatch, **env: str):  # type: ignore[no-untyped-def]
    """Parse a DAG file of tests/dags with the given environment (the files read settings at parse time)."""

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    test_dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag = dagbag(dag_folder=str(test_dags / f"{dag_id}.py"))
    assert bag.import_errors == {}, bag.import_errors
    assert dag_id in bag.dags, (str(test_dags), os.listdir(test_dags), bag.dag_ids)
    return bag.dags[dag_id]


def tune_connections(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], **extras: object) -> None:
    """Change extras (timeout, max_retries, token_cache...) of every sandbox connection."""
    import json

    for name, value in environment.items():
        conn = json.loads(value)
        conn["extra"].update(extras)
        monkeypatch.setenv(name, json.dumps(conn))
