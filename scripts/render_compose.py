"""Render docker-compose.yaml: Airflow's official CeleryExecutor topology for Airflow 3, built from this
checkout's Dockerfile, with a sandbox service and AIRFLOW_CONN_* pointing every vendor at it with the
Redis token cache. The connection values come from airflow_vendorauth.sandbox.connections, the one
source that the demo, the tests and the cluster script use too; a test checks the committed file is
exactly what this renders. Run `python scripts/render_compose.py` after changing either."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_vendorauth.sandbox.connections import env_var_name, sandbox_environment  # noqa: E402

SANDBOX_URL = "https://sandbox:8443"
TOKEN_CACHE = "redis://redis:6379/1"
#: Keys for this local stack only, shared by every container (each one otherwise makes its own, and the
#: api-server then refuses every task's token: apache/airflow issues 49646, 59373). Set FERNET_KEY,
#: JWT_SECRET and API_SECRET_KEY in the environment (or .env) for anything but a throw-away demo.
DEMO_FERNET_KEY = "${FERNET_KEY:-ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=}"
DEMO_JWT_SECRET = "${JWT_SECRET:-vendorauth-demo-jwt-secret-change-me-0123456789abcdef}"
DEMO_API_SECRET_KEY = "${API_SECRET_KEY:-vendorauth-demo-api-secret-change-me}"
#: The connections the stack gets (the certificate one is for tests: its PEM would drown the file).
CONNECTIONS = (
    "kazi_default",
    "keyavi_default",
    "keyavi_user",
    "kayzen_default",
    "smartrecruiters_default",
    "clazar_default",
    "oauth2_default",
)
#: The login of the UI and the REST API (the simple auth manager; the official file has a login too).
USER = "${_AIRFLOW_WWW_USER_USERNAME:-airflow}"
PASSWORD = "${_AIRFLOW_WWW_USER_PASSWORD:-airflow}"
PASSWORDS_FILE = "/opt/airflow/config/simple_auth_manager_passwords.json"
INIT_SCRIPT = (
    "mkdir -p /opt/airflow/logs /opt/airflow/data /opt/airflow/config && "
    f"printf '{{\"%s\": \"%s\"}}' \"{USER}\" \"{PASSWORD}\" > {PASSWORDS_FILE} && "
    'chown -R "${AIRFLOW_UID:-50000}:0" /opt/airflow/logs /opt/airflow/data /opt/airflow/config && '
    "airflow db migrate && airflow version"
)


def common() -> dict[str, Any]:
    environment = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": PASSWORDS_FILE,
        "AIRFLOW__API_AUTH__JWT_SECRET": DEMO_JWT_SECRET,
        "AIRFLOW__API__SECRET_KEY": DEMO_API_SECRET_KEY,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow:airflow@postgres/airflow",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://airflow:airflow@postgres/airflow",
        "AIRFLOW__CELERY__BROKER_URL": "redis://:@redis:6379/0",
        "AIRFLOW__CORE__FERNET_KEY": DEMO_FERNET_KEY,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
        "VENDORAUTH_DATA_DIR": "/opt/airflow/data",
        **{
            name: value
            for name, value in sandbox_environment(SANDBOX_URL, token_cache=TOKEN_CACHE, verify=False).items()
            if name in {env_var_name(conn_id) for conn_id in CONNECTIONS}
        },
    }
    return {
        "build": ".",
        "image": "airflow-vendorauth:local",
        "environment": environment,
        "volumes": [
            "./dags_examples:/opt/airflow/dags",
            "airflow-logs:/opt/airflow/logs",
            "airflow-data:/opt/airflow/data",
            "airflow-config:/opt/airflow/config",
        ],
        "user": "${AIRFLOW_UID:-50000}:0",
        "depends_on": {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "sandbox": {"condition": "service_healthy"},
        },
    }


def airflow_service(command: str, healthcheck: list[str], **extra: Any) -> dict[str, Any]:
    service = {
        "<<": "*airflow-common",
        "command": command,
        "healthcheck": {"test": healthcheck, "interval": "30s", "timeout": "10s", "retries": 5, "start_period": "30s"},
        "restart": "always",
        "depends_on": {
            "<<": "*airflow-common-depends-on",
            "airflow-init": {"condition": "service_completed_successfully"},
        },
    }
    service.update(extra)
    return service


def compose() -> dict[str, Any]:
    base = common()
    return {
        "x-airflow-common": base,
        "services": {
            "postgres": {
                "image": "postgres:16",
                "environment": {"POSTGRES_USER": "airflow", "POSTGRES_PASSWORD": "airflow", "POSTGRES_DB": "airflow"},
                "volumes": ["postgres-db-volume:/var/lib/postgresql/data"],
                "healthcheck": {
                    "test": ["CMD", "pg_isready", "-U", "airflow"],
                    "interval": "10s",
                    "retries": 5,
                    "start_period": "5s",
                },
                "restart": "always",
            },
            "redis": {
                "image": "redis:7.2-bookworm",
                "expose": [6379],
                "healthcheck": {
                    "test": ["CMD", "redis-cli", "ping"],
                    "interval": "10s",
                    "timeout": "30s",
                    "retries": 50,
                    "start_period": "30s",
                },
                "restart": "always",
            },
            "sandbox": {
                "build": ".",
                "image": "airflow-vendorauth:local",
                "entrypoint": ["airflow-vendorauth-sandbox"],
                "command": [
                    "--host",
                    "0.0.0.0",
                    "--port",
                    "8443",
                    "--tls-hostname",
                    "sandbox",
                    "--public-url",
                    SANDBOX_URL,
                    "--token-cache",
                    TOKEN_CACHE,
                ],
                "ports": ["8443:8443"],
                "healthcheck": {
                    "test": [
                        "CMD",
                        "python",
                        "-c",
                        "import httpx; httpx.get('https://localhost:8443/_admin/health', verify=False).raise_for_status()",
                    ],
                    "interval": "10s",
                    "retries": 10,
                    "start_period": "10s",
                },
                "restart": "always",
            },
            "airflow-apiserver": airflow_service(
                "api-server", ["CMD", "curl", "--fail", "http://localhost:8080/api/v2/version"], ports=["8080:8080"]
            ),
            "airflow-scheduler": airflow_service(
                "scheduler", ["CMD", "curl", "--fail", "http://localhost:8974/health"]
            ),
            "airflow-dag-processor": airflow_service(
                "dag-processor",
                ["CMD-SHELL", 'airflow jobs check --job-type DagProcessorJob --hostname "$${HOSTNAME}"'],
            ),
            "airflow-worker": airflow_service(
                "celery worker",
                [
                    "CMD-SHELL",
                    'celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d "celery@$${HOSTNAME}" || celery --app airflow.executors.celery_executor.app inspect ping -d "celery@$${HOSTNAME}"',
                ],
                environment={"<<": "*airflow-common-env", "DUMB_INIT_SETSID": "0"},
                # tasks talk to the api-server (the execution API): start once it answers, as the official file does
                depends_on={
                    "<<": "*airflow-common-depends-on",
                    "airflow-apiserver": {"condition": "service_healthy"},
                    "airflow-init": {"condition": "service_completed_successfully"},
                },
            ),
            "airflow-triggerer": airflow_service(
                "triggerer", ["CMD-SHELL", 'airflow jobs check --job-type TriggererJob --hostname "$${HOSTNAME}"']
            ),
            "airflow-init": {
                "<<": "*airflow-common",
                "entrypoint": "/bin/bash",
                "command": ["-c", INIT_SCRIPT],
                "environment": {"<<": "*airflow-common-env", "_AIRFLOW_DB_MIGRATE": "true"},
                "user": "0:0",
            },
        },
        "volumes": {"postgres-db-volume": None, "airflow-logs": None, "airflow-data": None, "airflow-config": None},
    }


def render() -> str:
    """The YAML text, with the anchors Airflow's official file uses for its shared blocks."""
    text = yaml.safe_dump(compose(), sort_keys=False, width=1000)
    text = text.replace("x-airflow-common:\n", "x-airflow-common: &airflow-common\n", 1)
    text = text.replace("  environment:\n", "  environment: &airflow-common-env\n", 1)
    text = text.replace("  depends_on:\n    redis:", "  depends_on: &airflow-common-depends-on\n    redis:", 1)
    for alias in ("airflow-common", "airflow-common-env", "airflow-common-depends-on"):
        text = text.replace(f"'<<': '*{alias}'", f"<<: *{alias}")
    header = (
        "# Generated by scripts/render_compose.py from airflow_vendorauth/sandbox/connections.py: do not edit.\n"
        "# Airflow 3 with the CeleryExecutor, this provider built from the checkout, and the sandbox vendors.\n"
        "# Start it with:  docker compose up --scale airflow-worker=2\n"
        "# UI and REST API on http://localhost:8080, login airflow / airflow (set _AIRFLOW_WWW_USER_PASSWORD).\n"
    )
    return header + text


if __name__ == "__main__":
    (ROOT / "docker-compose.yaml").write_text(render())
    print("wrote docker-compose.yaml")
