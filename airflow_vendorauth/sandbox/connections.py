"""The Airflow connections that point each vendor at a sandbox: the one source of these values.

``make demo``, the pytest plugin, the cluster script and docker-compose.yaml all take them from here.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_vendorauth.sandbox.state import SandboxCredentials


def sandbox_connections(
    base_url: str, *, token_cache: str = "memory", verify: bool = True, credentials: SandboxCredentials | None = None
) -> dict[str, dict[str, Any]]:
    """conn_id -> Airflow connection (JSON form) for every vendor, pointed at ``base_url``.

    ``verify=False`` (a sandbox serving https with its self-signed certificate) is written into each
    connection, as a user would have to."""
    c = credentials or SandboxCredentials()
    url = base_url.rstrip("/")
    common: dict[str, Any] = {"cache": token_cache, **({} if verify else {"verify": False})}
    return {
        "kazi_default": {
            "conn_type": "kazi",
            "host": f"{url}/kazi",
            "login": c.kazi_client_id,
            "password": c.kazi_client_secret,
            "extra": {
                "auth_url": f"{url}/login/{c.kazi_tenant}/oauth2/token",
                "resource": c.kazi_resource,
                "subscription_api_key": c.kazi_subscription_key,
                **common,
            },
        },
        "keyavi_default": {
            "conn_type": "keyavi",
            "host": f"{url}/keyavi/api",
            "login": c.keyavi_client_id,
            "password": c.keyavi_client_secret,
            "extra": {
                "auth_url": f"{url}/login/{c.keyavi_tenant}/oauth2/v2.0/token",
                "grant_type": "client_credentials",
                "scope": f"{c.keyavi_app_id_uri}/.default",
                "subscription_api_key": c.keyavi_subscription_key,
                "caller_id": c.keyavi_caller_id,
                **common,
            },
        },
        "keyavi_user": {
            "conn_type": "keyavi",
            "host": f"{url}/keyavi/api",
            "login": c.keyavi_client_id,
            "password": c.keyavi_client_secret,
            "extra": {
                "auth_url": f"{url}/login/{c.keyavi_tenant}/oauth2/v2.0/token",
                "grant_type": "password",
                "scope": f"{c.keyavi_app_id_uri}/access_as_user",
                "username": c.keyavi_username,
                "user_password": c.keyavi_password,
                "subscription_api_key": c.keyavi_subscription_key,
                **common,
            },
        },
        "kayzen_default": {
            "conn_type": "kayzen",
            "host": f"{url}/kayzen",
            "login": c.kayzen_api_key,
            "password": c.kayzen_api_secret,
            "extra": {"username": c.kayzen_username, "user_password": c.kayzen_password, **common},
        },
        "smartrecruiters_default": {
            "conn_type": "smartrecruiters",
            "host": f"{url}/smartrecruiters",
            "login": c.smartrecruiters_client_id,
            "password": c.smartrecruiters_client_secret,
            "extra": dict(common),
        },
        "clazar_default": {
            "conn_type": "clazar",
            "host": f"{url}/clazar",
            "login": c.clazar_client_id,
            "password": c.clazar_client_secret,
            "extra": dict(common),
        },
    }


def env_var_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def sandbox_environment(base_url: str, *, token_cache: str = "memory", verify: bool = True) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (JSON form) for every sandbox connection."""
    return {
        env_var_name(conn_id): json.dumps(conn)
        for conn_id, conn in sandbox_connections(base_url, token_cache=token_cache, verify=verify).items()
    }
