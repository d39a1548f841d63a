"""docker-compose.yaml runs on first use: every service started as a process with exactly the file's
environment (tests/harness/compose_processes.py), a login required, and an example DAG triggered through
the REST API runs to success on the Celery worker without anyone unpausing it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.harness.compose_processes import ComposeStack
from tests.harness.deployment import ROOT
from tests.services import require_postgres

pytestmark = pytest.mark.integration


def run_example_dag(compose_file: Path, root: Path, dag_id: str = "clazar_listings") -> dict[str, object]:
    """Start the stack, log in, trigger ``dag_id`` and wait for the run: what a new user would do."""
    with ComposeStack(compose_file, root) as stack:
        seen: dict[str, object] = {"anonymous": httpx.get(f"{stack.api}/api/v2/dags", timeout=10).status_code}
        login = httpx.post(f"{stack.api}/auth/token", json={"username": "airflow", "password": "airflow"}, timeout=10)
        seen["login"] = login.status_code
        headers = {"Authorization": f"Bearer {login.json().get('access_token', '')}"} if login.is_success else {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the dag-processor parses the DAG files first
            if httpx.get(f"{stack.api}/api/v2/dags/{dag_id}", headers=headers, timeout=10).status_code == 200:
                break
            time.sleep(1)
        run = httpx.post(f"{stack.api}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None}, headers=headers, timeout=10)
        seen["trigger"] = run.status_code
        state = None
        if run.is_success:
            run_id = run.json()["dag_run_id"]
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and state not in ("success", "failed"):
                time.sleep(2)
                state = httpx.get(f"{stack.api}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=headers, timeout=10).json()["state"]
        seen["state"] = state
        seen["logs"] = str(stack.logs)
        seen["outputs"] = sorted(p.name for p in (root / "volumes" / "airflow-data").rglob("*.jsonl"))
        return seen


@pytest.mark.timeout(900)  # every service of the compose file started as a process: its own waits allow 10 min
def test_the_compose_file_runs_an_example_dag_as_a_new_user_would(tmp_path: Path) -> None:
    require_postgres()
    seen = run_example_dag(ROOT / "docker-compose.yaml", tmp_path)
    assert seen["anonymous"] in (401, 403), seen  # a login is required
    assert seen["login"] == 201 or seen["login"] == 200, seen
    assert seen["trigger"] == 200, seen
    assert seen["state"] == "success", seen  # not paused, tasks accepted by the api-server, data written
    assert "listings.jsonl" in seen["outputs"], seen
