"""The Airflow connections that point each vendor at a sandbox: the one source of these values.

``make demo``, the pytest plugin, the cluster script and docker-compose.yaml all take them from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_vendorauth.sandbox.state import SandboxCredentials, sandbox_key


def sandbox_connections(
    base_url: str, *, token_cache: str = "memory", verify: bool = True, credentials: SandboxCredentials | None = None
) -> dict[str, dict[str, Any]]:
    """conn_id -> Airflow connection (JSON form) for every vendor, pointed at ``base_url``.

    ``verify=False`` (a sandbox serving https with its self-signed certificate) is written into each
    connection, as a user would have to."""
    c = credentials or SandboxCredentials()
    url = base_url.rstrip("/")
    common: dict[str, Any] = {"cache": token_cache, **({} if verify else {"verify": False})}
    kazi: dict[str, Any] = {
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
    }
    return {
        "kazi_default": kazi,
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
        # Kazi with a certificate instead of a client secret (client_auth private_key_jwt), as Entra tenants
        # that forbid secrets require.
        "kazi_certificate": _with_certificate(kazi),
        # Kazi with workload identity (client_auth federated): no secret; the assertion file comes from
        # AZURE_FEDERATED_TOKEN_FILE, as on AKS (mint its content with Sandbox.workload_token()).
        "kazi_workload_identity": _federated(kazi),
        # The generic type: an issuer to discover, client_secret_basic, paging described in JSON.
        "oauth2_default": oauth2_connection(url, token_cache=token_cache, verify=verify, credentials=c),
        # The generic type with DPoP-bound tokens (RFC 9449): the sandbox demands and rotates nonces.
        "oauth2_dpop": oauth2_connection(url, token_cache=token_cache, verify=verify, credentials=c, dpop=True),
    }


def _with_certificate(conn: dict[str, Any]) -> dict[str, Any]:
    key, certificate = sandbox_key("rsa")
    conn = {**conn, "password": None}
    conn["extra"] = {**conn["extra"], "client_auth": "private_key_jwt", "private_key": key, "certificate": certificate}
    return conn


def _federated(conn: dict[str, Any]) -> dict[str, Any]:
    return {**conn, "password": None, "extra": {**conn["extra"], "client_auth": "federated"}}


def oauth2_connection(
    url: str,
    *,
    grant_type: str = "client_credentials",
    client_auth: str = "client_secret_basic",
    token_cache: str = "memory",
    verify: bool = True,
    credentials: SandboxCredentials | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An ``oauth2`` connection to the sandbox's generic authorization server, for one grant and one
    client authentication style (each style has its own registered client there)."""
    c = credentials or SandboxCredentials()
    registered = [k for k, v in c.oauth2_clients().items() if v == client_auth]
    # With dpop, the client registered for DPoP-bound tokens only, when it authenticates this way.
    client_id = c.oauth2_dpop_client_id if extra.get("dpop") and c.oauth2_dpop_client_id in registered else registered[0]
    extras: dict[str, Any] = {"issuer": f"{url.rstrip('/')}/oauth2", "grant_type": grant_type, "client_auth": client_auth}
    extras["scope"] = "items.read"
    extras["pagination"] = {"style": "page_number", "page_param": "page", "size_param": "per_page",
                            "page_size": 50, "records_path": "items", "total_path": "total"}
    if grant_type == "password":
        extras |= {"username": c.oauth2_username, "user_password": c.oauth2_password}
    if client_auth == "private_key_jwt":
        extras |= dict(zip(("private_key", "certificate"), sandbox_key("rsa"), strict=True)) | {"key_id": "rsa-1"}
    extras |= {"cache": token_cache, **({} if verify else {"verify": False}), **extra}
    secret = c.oauth2_client_secret if client_auth.startswith("client_secret") else None
    return {"conn_type": "oauth2", "host": f"{url.rstrip('/')}/oauth2-api", "login": client_id, "password": secret, "extra": extras}


#: The connection of the mutual TLS example DAG (dags_examples/oauth2_mtls_items.py).
MTLS_CONN_ID = "oauth2_mtls"


def mtls_connection(
    url: str, pki_dir: str, *, certificate: str = "client", client_auth: str = "tls_client_auth", **extra: Any
) -> dict[str, Any]:
    """An ``oauth2`` connection to a sandbox in mutual TLS mode (``--mtls-dir``): the client certificate
    ``certificate`` of its test PKI (``client``, ``client2`` or, for self_signed_tls_client_auth,
    ``selfsigned``), and the test CA as the ``verify`` bundle."""
    from airflow_vendorauth.sandbox.mtls import MTLS_CLIENT, SELF_SIGNED_CLIENT, SandboxPki

    pki = SandboxPki(Path(pki_dir))
    conn = oauth2_connection(url, verify=True, **extra)
    conn |= {"login": SELF_SIGNED_CLIENT if client_auth.startswith("self_signed") else MTLS_CLIENT, "password": None}
    conn["extra"] |= {
        "client_auth": client_auth,
        "client_certificate": pki.pem(certificate),
        "client_private_key": pki.key(certificate),
        "verify": pki.ca_bundle,
    }
    return conn


def env_var_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def sandbox_environment(
    base_url: str, *, token_cache: str = "memory", verify: bool = True, mtls_dir: str | None = None
) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (JSON form) for every sandbox connection; with ``mtls_dir`` (a sandbox
    serving mutual TLS with that test PKI) also ``oauth2_mtls``, which ``oauth2_mtls_items`` uses."""
    connections = sandbox_connections(base_url, token_cache=token_cache, verify=verify)
    if mtls_dir:
        connections[MTLS_CONN_ID] = mtls_connection(base_url, mtls_dir, token_cache=token_cache)
    return {env_var_name(conn_id): json.dumps(conn) for conn_id, conn in connections.items()}
