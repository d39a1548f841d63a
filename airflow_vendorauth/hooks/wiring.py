"""How a hook's parts are put together: the credential's fingerprint, its token endpoint and provider (with
the shared cache the connection asks for), and the API client over them.

Only light imports at the top: the hooks import this module when a DAG file is parsed; the token machinery
and the HTTP client are imported by :func:`build_client`, when a task first makes a call.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_vendorauth.auth.cache import cache_key
from airflow_vendorauth.auth.grants import MTLS_CLIENT_AUTH
from airflow_vendorauth.auth.redis_url import RedisUrlError
from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.hooks.masking import mask
from airflow_vendorauth.retry import RetryPolicy

if TYPE_CHECKING:
    from airflow_vendorauth.client.api_client import ApiClient
    from airflow_vendorauth.hooks.base import VendorHook
    from airflow_vendorauth.vendors.profile import ConnectionSettings, VendorProfile


def build_client(hook: VendorHook, s: ConnectionSettings, redis_connection: Any) -> ApiClient:
    """The API client of ``hook`` for its validated connection ``s`` (``redis_connection``: the Airflow
    connection ``cache: redis_conn_id:<id>`` names, if any)."""
    from airflow_vendorauth.auth import dpop
    from airflow_vendorauth.auth.provider import TokenProvider
    from airflow_vendorauth.auth.token_endpoint import TokenEndpoint
    from airflow_vendorauth.client.api_client import ApiClient
    from airflow_vendorauth.hooks.quota import limiter_for
    from airflow_vendorauth.hooks.shared_cache import shared_cache_for

    profile, log = hook.profile, hook.log
    transport, async_transport = hook._transports
    policy = hook._retry_policy or RetryPolicy.from_max_retries(s.max_retries)
    key = credential_key(profile, s)
    try:
        shared = shared_cache_for(s.token_cache, logger=log, redis_connection=redis_connection)  # type: ignore[arg-type]
    except RedisUrlError as unusable:  # only an Airflow Redis connection's fields get here unchecked
        raise ConnectionConfigError(
            hook.conn_id,
            "cache",
            f"names the Airflow connection {s.token_cache.redis_conn_id!r}, whose address cannot be used: {unusable}",
            "correct that connection's host (host:port, several separated by commas with extra sentinel_master or "
            "cluster: true), port and extras",
            label="Token cache",
        ) from None
    limiter = limiter_for(
        hook.conn_id, profile, s, shared, logger=log, retry_after_cap=policy.retry_after_cap_seconds  # type: ignore[arg-type]
    )
    endpoint = TokenEndpoint(
        vendor=profile.display_name,
        conn_id=hook.conn_id,
        build=lambda attempt: profile.build_token_request(s, attempt),
        token_url=s.token_url,
        issuer=s.issuer,
        policy=policy,
        timeout=s.timeout,
        verify=s.tls(),
        logger=log,  # type: ignore[arg-type]
        expect_jwt=profile.issues_jwt,
        labels={"login": profile.login_label, "password": credential_label(profile, s)},
        transport=transport,
        proof_key=dpop.key_for(key) if s.extras.get("dpop") else None,
        mtls=s.client_certificate is not None,
        limiter=limiter if s.extra("quota_auth_requests") else None,
    )
    refresh_seed = profile.refresh_seed(s)
    if refresh_seed is not None and shared is None and s.token_cache.kind != "memory":
        raise chain_without_its_cache(hook.conn_id, s)
    provider = TokenProvider(
        endpoint,
        key=key,
        shared=shared,
        refresh_seed=refresh_seed,
        refresh_reuse_seconds=float(s.extra("refresh_reuse_interval") or 0),
        on_new_token=lambda token: mask(token.access_token),
        logger=log,  # type: ignore[arg-type]
    )
    default_pagination = profile.default_pagination
    return ApiClient(
        s,
        provider,
        api_headers=profile.api_headers(s),
        sensitive_headers=profile.header_names(s),
        policy=policy,
        default_pagination=(lambda: default_pagination(s)) if default_pagination else None,
        logger=log,  # type: ignore[arg-type]
        max_concurrency=s.extra("max_concurrency") or profile.max_concurrency,
        transport=transport,
        async_transport=async_transport,
        limiter=limiter,
    )


def chain_without_its_cache(conn_id: str, s: ConnectionSettings) -> ConnectionConfigError:
    """The refusal of a rotating refresh token whose shared cache keeps nothing: without a Fernet key a file
    or Redis cache falls back to this process's memory, where the next refresh token would die with the
    task (the next run presenting a spent one: the chain lost, and under RFC 9700 maybe the grant). Only
    ``cache: memory`` written out accepts that (issue 32, item 4); a cache the user asked for must not
    quietly become it."""
    return ConnectionConfigError(
        conn_id,
        "cache",
        f"is {s.token_cache}, but Airflow has no valid [core] fernet_key (AIRFLOW__CORE__FERNET_KEY) to encrypt "
        "tokens at rest, so nothing would be written there: this connection's rotating refresh token would be "
        "spent and its successor would die with the task's process (the next run presenting a spent one)",
        "set Airflow's Fernet key (the same one on every worker, the triggerer and the api-server), or write "
        "memory to accept a chain that lives as long as one process",
        label="Token cache",
    )


def credential_label(profile: VendorProfile, s: ConnectionSettings) -> str:
    """What proves the client, in the form's words, for the fix of a refusal."""
    method = s.extra("client_auth")
    if method == "private_key_jwt":
        return "Private key and Certificate (as registered with the identity provider)"
    if method == "federated":
        return "Assertion file (its token's issuer and subject must match a federated credential of the client)"
    if method in MTLS_CLIENT_AUTH:
        return "Client certificate (as registered for the client, or issued by the CA the server trusts)"
    return "Client ID alone (a public client)" if method == "none" else profile.password_label


def credential_key(profile: VendorProfile, s: ConnectionSettings) -> str:
    """The credential's fingerprint: everything that makes another token (never a secret in clear)."""
    identity = [s.extra(name) for name in profile.identity_extras]
    return cache_key(profile.conn_type, s.token_url or s.issuer, s.client_id, s.client_secret, *map(_text, identity))


def quota_key(s: ConnectionSettings) -> str:
    """The quota's fingerprint: the client at its token endpoint, whichever connection names it (a rotated
    secret, another scope or user of the same client still draws on the vendor's one quota for it)."""
    return cache_key("quota", s.token_url or s.issuer, s.client_id)


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return None if value is None else str(value)
