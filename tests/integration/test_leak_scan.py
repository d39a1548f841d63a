"""Leak scan: run the fault suite, a refused credential and every example DAG with DEBUG logging on a real
Airflow deployment (api-server, scheduler, dag-processor, triggerer, LocalExecutor), then search every
log line, XCom value, rendered field, output file and exception text for every token the sandbox
issued and every secret the run used. Zero hits is the only pass."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.harness.deployment import Deployment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["talent_pipeline", "keyavi_payloads", "kayzen_campaigns", "clazar_listings"]
WRONG_SECRET = "wrong-secret-for-the-leak-scan-7781"


@pytest.mark.timeout(900)  # a deployment runs every example DAG twice: its own waits allow 10 min
def test_no_token_or_secret_appears_anywhere(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {**sandbox_connections, "VENDORAUTH_DATA_DIR": str(data), "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"}
    for name, value in sandbox_connections.items():  # fail fast and small under the faults
        conn = json.loads(value)
        conn["extra"].update({"timeout": 1, "max_retries": 8})
        env[name] = json.dumps(conn)
    refused = json.loads(env["AIRFLOW_CONN_KAZI_DEFAULT"])
    refused["password"] = WRONG_SECRET
    env["AIRFLOW_CONN_KAZI_REFUSED"] = json.dumps(refused)

    for dataset in (
        "kazi.expectations",
        "keyavi.payloads",
        "kayzen.campaigns",
        "smartrecruiters.jobs",
        "clazar.listings",
    ):
        vendor_sandbox.configure(sizes={dataset: 1500})
    vendor_sandbox.add_fault(
        route="/*", rate_429=0.05, rate_5xx=0.08, rate_drop=0.04, rate_slow=0.03, slow_seconds=2, retry_after=1
    )
    vendor_sandbox.add_fault(route="token", rate_5xx=0.2)

    dag_files = [ROOT / "dags_examples" / f"{d}.py" for d in EXAMPLES] + [ROOT / "dags_examples" / "_common.py"]
    dag_files += [ROOT / "tests" / "dags" / "vendor_scan.py", ROOT / "tests" / "dags" / "refused_credentials.py"]
    deployment = Deployment(root=tmp_path / "deployment", extra_env=env, dag_files=dag_files)
    with deployment:
        # first the fault suite and the refused credential, then (faults off) every example DAG
        runs = {
            dag_id: deployment.trigger(dag_id, f"leak-scan-{dag_id}")
            for dag_id in ["vendor_scan", "refused_credentials"]
        }
        states = {dag_id: deployment.wait_for_run(dag_id, run_id, timeout=300) for dag_id, run_id in runs.items()}
        vendor_sandbox.clear_faults()
        runs = {dag_id: deployment.trigger(dag_id, f"leak-scan-{dag_id}") for dag_id in EXAMPLES}
        states |= {dag_id: deployment.wait_for_run(dag_id, run_id, timeout=300) for dag_id, run_id in runs.items()}
        database = "\n".join(
            str(row[0])
            for table, column in (("xcom", "value"), ("rendered_task_instance_fields", "rendered_fields"))
            for row in deployment.query(f"SELECT {column} FROM {table}")
        )
    assert states == {**{d: "success" for d in ["vendor_scan", *EXAMPLES]}, "refused_credentials": "failed"}, (
        f"logs: {deployment.logs}"
    )

    credentials = vendor_sandbox.credentials
    tokens = set(vendor_sandbox.issued_tokens())
    assert sum(t.startswith("eyJ") for t in tokens) >= 2 and len(tokens) >= 6, "every vendor issued tokens"
    needles = tokens | set(credentials.secrets()) | {WRONG_SECRET, credentials.keyavi_caller_id}
    needles.add(base64.b64encode(f"{credentials.kayzen_api_key}:{credentials.kayzen_api_secret}".encode()).decode())

    haystacks = {
        str(p): p.read_text(errors="replace")
        for folder in (deployment.logs, data)
        for p in folder.rglob("*")
        if p.is_file()
    }
    haystacks["metadata database: XCom and rendered fields"] = database
    everything = "\n".join(haystacks.values())
    assert "AADSTS7000215" in everything  # the refused credential's exception text is among the haystacks
    assert everything.count("[debug") > 1000  # DEBUG logging really was on

    hits = sorted(
        {(where, needle[:8] + "...") for where, text in haystacks.items() for needle in needles if needle in text}
    )
    assert hits == [], f"secrets found: {hits[:10]}"
    print(
        f"leak scan: {len(needles)} secrets and tokens searched in {len(haystacks)} logs, files and tables ({len(everything)} characters), 0 hits"
    )
