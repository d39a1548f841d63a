"""The generic ``oauth2`` connection type: any OAuth 2.0 API, configured, not coded.

Three grants (client credentials, password, refresh token with rotation), five client authentication
styles (``client_secret_basic`` by default, ``client_secret_post``, ``client_secret_json``,
``private_key_jwt``, ``none``), the token endpoint given or discovered from an ``issuer``, ``scope``,
``audience`` and ``resource`` (RFC 8707), extra token request parameters, static API headers (masked)
and a paging strategy described in JSON, so ``VendorApiOperator`` pages the API without code. With
``dpop: true`` tokens are bound to a key of the client (RFC 9449, :mod:`airflow_vendorauth.auth.dpop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_vendorauth.auth.grants import CLIENT_AUTH_METHODS, Attempt, TokenRequest, oauth2_request
from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.vendors.fields import (
    MTLS_FIELDS,
    ExtraField,
    certificate_fields,
    client_auth_field,
    federation_field,
    user_password_field,
    username_field,
)
from airflow_vendorauth.vendors.profile import ConnectionSettings, VendorProfile, client_credentials

GRANTS = ("client_credentials", "password", "refresh_token")

#: The most requests ``concurrency="auto"`` runs at once on a generic API, unless the connection's
#: ``max_concurrency`` says otherwise. Auto starts at half of it and climbs while throughput does, backing
#: off on 429s and timeouts, so the ceiling is a safety bound, not a target. 16, measured with
#: ``benchmarks/ceiling.py`` (200 pages of 40 ms): against an API allowing 16 at once, 1.50 s under 16,
#: 1.74 s under 8, 3.01 s under the former 4, 2.90 s under 32 (a burst of 429s and a Retry-After); against
#: one allowing only 4, 4.28 s under 16 against 3.18 s under 4 (one burst of 4 refusals, then it holds at 4).
DEFAULT_MAX_CONCURRENCY = 16


def _grant_is(grant: str) -> Any:
    return lambda extras: extras.get("grant_type") == grant


def _token_request(s: ConnectionSettings, attempt: Attempt) -> TokenRequest:
    grant = s.extra("grant_type")
    params: dict[str, Any] = {"grant_type": grant}
    if grant == "password":
        params |= {"username": s.extra("username"), "password": s.extra("user_password")}
    elif grant == "refresh_token":
        params["refresh_token"] = attempt.refresh_token
    params |= {name: s.extra(name) for name in ("scope", "audience", "resource")}
    params |= s.extra("auth_params") or {}
    return oauth2_request(attempt.token_url, params, client_credentials(s, "client_secret_basic"))


def _headers(s: ConnectionSettings) -> dict[str, str]:
    return {str(k): str(v) for k, v in (s.extra("secret_headers") or {}).items()}


def _pagination(s: ConnectionSettings) -> object:
    description = s.extra("pagination")
    if not description:  # recognised from the API's first answer (Link header, next link, records list)
        from airflow_vendorauth.pagination.detect import DetectedPagination

        return DetectedPagination()
    from airflow_vendorauth.pagination.strategies import strategy_from_json

    return strategy_from_json(description)


def _validate(s: ConnectionSettings) -> None:
    description: Mapping[str, Any] | None = s.extra("pagination")
    if description:
        from airflow_vendorauth.pagination.strategies import strategy_from_json

        try:
            strategy_from_json(description)
        except ValueError as exc:
            raise ConnectionConfigError(
                s.conn_id, "pagination", str(exc), 'e.g. {"style": "page_number", "records_path": "items"}',
                label="Pagination",
            ) from None


OAUTH2 = VendorProfile(
    conn_type="oauth2",
    display_name="OAuth 2.0",
    hook_class_name="airflow_vendorauth.hooks.oauth2.OAuth2Hook",
    default_host=None,
    host_placeholder="https://api.example.com/v1",
    token_url_template=None,
    build_token_request=_token_request,
    fields=(
        ExtraField(
            "issuer",
            "Issuer",
            "Instead of Token URL: the authorization server's issuer; its token endpoint is discovered from "
            "/.well-known/openid-configuration (or RFC 8414's metadata), e.g. https://login.example.com/realm",
            credential=True,
        ),
        ExtraField(
            "grant_type",
            "Grant type",
            "client_credentials (an application), password (a user: Username and User password) or "
            "refresh_token (Refresh token; rotated tokens are kept in the token cache).",
            choices=GRANTS,
            default="client_credentials",
            credential=True,
        ),
        client_auth_field(
            CLIENT_AUTH_METHODS,
            "client_secret_basic",
            "How the client proves itself: client_secret_basic (Authorization header), client_secret_post "
            "(form), client_secret_json (JSON body), private_key_jwt (a signed assertion: Private key, no "
            "Client secret), federated (an assertion another issuer signed, read from Assertion file: workload "
            "identity), tls_client_auth or self_signed_tls_client_auth (RFC 8705 mutual TLS: Client certificate "
            "and its key) or none (a public client).",
        ),
        ExtraField(
            "dpop",
            "DPoP",
            "Sender-constrained tokens (RFC 9449): true to bind tokens to a key this client holds (ES256, made "
            "per credential) and prove it on every token request and API call; the server's nonces are "
            "handled. For APIs that require DPoP (FAPI 2.0), e.g. true.",
            kind="boolean",
            credential=True,
        ),
        ExtraField("scope", "Scope", "Space-separated scopes to ask for, e.g. items.read items.write", credential=True),
        ExtraField(
            "audience", "Audience", "The API the token is for (Auth0, Okta), e.g. https://api.example.com", credential=True
        ),
        ExtraField("resource", "Resource", "RFC 8707 resource indicator, e.g. https://api.example.com/", credential=True),
        username_field(
            "The user's name (password grant).", required_when=_grant_is("password"), required_reason="(the password grant needs it)"
        ),
        user_password_field(
            "The user's password (password grant).",
            required_when=_grant_is("password"),
            required_reason="(the password grant needs it)",
        ),
        ExtraField(
            "refresh_token",
            "Refresh token",
            "The first refresh token (refresh_token grant); the newest one is then kept, encrypted, in the token cache.",
            secret=True,
            required_when=_grant_is("refresh_token"),
            required_reason="(the refresh_token grant starts from it)",
        ),
        ExtraField(
            "refresh_reuse_interval",
            "Refresh token reuse interval",
            "Seconds the server still takes a refresh token after its first use (Auth0's reuse interval, Okta's "
            "grace period): a refresh whose answer was lost is retried within them. 0 (the default): a refresh "
            "token that was presented is never presented again, e.g. 30.",
            "integer",
            default=0,
            bounds=(0, 3600),
        ),
        *certificate_fields(certificate_required=False),
        federation_field(),
        *MTLS_FIELDS,
        ExtraField(
            "auth_params",
            "Token request parameters",
            'Extra form fields of every token request, as a JSON object, e.g. {"tenant": "acme"}',
            kind="json",
            aliases=("token_params",),
            credential=True,
        ),
        ExtraField(
            "secret_headers",
            "API headers",
            'Static headers on every API call, as a JSON object (values are masked), e.g. {"X-Api-Key": "..."}',
            kind="json",
            secret=True,
            aliases=("api_headers",),
        ),
        ExtraField(
            "max_concurrency",
            "Max requests at once",
            'The most page requests concurrency="auto" runs at once on this API (it finds the API\'s limit '
            "below this, halving on a 429 or a timeout). Set it to the API's documented concurrency limit, e.g. 8.",
            "integer",
            default=DEFAULT_MAX_CONCURRENCY,
            bounds=(1, 64),
        ),
        ExtraField(
            "pagination",
            "Pagination",
            'How the API pages, as JSON: {"style": "page_number", "page_param": "page", "size_param": '
            '"per_page", "page_size": 100, "records_path": "items"}; styles: page_number, offset, cursor, next_link. '
            "Empty: recognised from the first answer (a Link header or a next link, the records list).",
            kind="json",
        ),
    ),
    api_headers=_headers,
    validate=_validate,
    identity_extras=(
        "grant_type",
        "client_auth",
        "scope",
        "audience",
        "resource",
        "username",
        "user_password",
        "refresh_token",
        "private_key",
        "key_id",
        "auth_params",
        "dpop",
        "assertion_file",
        # A certificate-bound token (cnf.x5t#S256) works only over its certificate: the certificate is part of
        # the cache key, so two connections that differ by certificate never share a token.
        "client_certificate",
    ),
    default_pagination=_pagination,
    max_concurrency=DEFAULT_MAX_CONCURRENCY,
    header_names=lambda s: tuple(_headers(s)),
    refresh_seed=lambda s: s.extra("refresh_token") if s.extra("grant_type") == "refresh_token" else None,
)
