"""docker-compose.yaml, validated without a Docker engine: the Compose specification's JSON schema
(compose-spec, as shipped in docker-compose 1.29.2, kept in tests/data), the official CeleryExecutor
topology, the build, the mounts, and connections that come from the one source the cluster uses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_vendorauth.sandbox.connections import sandbox_environment
from airflow_vendorauth.vendors import VENDORS
from airflow_vendorauth.vendors.profile import RawConnection

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import render_compose  # noqa: E402

OFFICIAL_SERVICES = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_the_committed_file_is_what_the_renderer_makes() -> None:
    assert (ROOT / "docker-compose.yaml").read_text() == render_compose.render(), "run scripts/render_compose.py"


def test_it_is_valid_against_the_compose_specification(compose: dict) -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose_spec.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(compose)


def test_it_has_the_official_celery_topology_and_the_sandbox(compose: dict) -> None:
    services = compose["services"]
    assert OFFICIAL_SERVICES | {"sandbox"} == set(services)
    for name in OFFICIAL_SERVICES - {"postgres", "redis"}:
        service = services[name]
        assert service["build"] == "." and service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "./dags_examples:/opt/airflow/dags" in service["volumes"]
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker"
    assert "container_name" not in worker  # --scale airflow-worker=2 needs unnamed containers
    assert worker["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    assert worker["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM apache/airflow:3" in dockerfile
    assert '"/opt/airflow-vendorauth[redis]"' in dockerfile


def test_connections_come_from_the_one_source_and_pass_our_own_validation(compose: dict) -> None:
    environment = compose["services"]["airflow-worker"]["environment"]
    expected = sandbox_environment(render_compose.SANDBOX_URL, token_cache=render_compose.TOKEN_CACHE, verify=False)
    found = {k: v for k, v in environment.items() if k.startswith("AIRFLOW_CONN_")}
    assert found == {k: v for k, v in expected.items() if k in found}
    assert len(found) == len(render_compose.CONNECTIONS)
    for name, value in found.items():
        conn = json.loads(value)
        assert conn["extra"]["cache"].startswith("redis://redis:6379")
        settings = VENDORS[conn["conn_type"]].resolve(
            RawConnection(
                conn_id=name,
                conn_type=conn["conn_type"],
                host=conn["host"],
                login=conn["login"],
                password=conn["password"],
                extra=conn["extra"],
            )
        )
        assert settings.base_url.startswith("https://sandbox:8443") and settings.verify is False


def test_the_schema_check_can_fail(compose: dict) -> None:
    import copy

    schema = json.loads((ROOT / "tests" / "data" / "compose_spec.json").read_text())
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-worker"]["replicas_typo"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(broken)


def test_every_container_shares_the_keys_and_a_login_is_required(compose: dict) -> None:
    """Without one JWT secret for all, the api-server refuses every task's token (apache/airflow 49646)."""
    environments = [s["environment"] for n, s in compose["services"].items() if n.startswith("airflow-")]
    for name in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        assert len({env[name] for env in environments}) == 1, name
    common = environments[0]
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in common
    assert common["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].endswith(":admin")
    assert common["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "false"
    init = " ".join(compose["services"]["airflow-init"]["command"])
    assert "chown" in init and "/opt/airflow/data" in init  # the volumes tasks write to belong to them
    assert compose["services"]["airflow-init"]["user"] == "0:0"
