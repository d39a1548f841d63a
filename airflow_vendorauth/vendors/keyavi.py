"""Keyavi: Microsoft identity platform v2.0, as a user (password grant, scope ending
``/access_as_user``) or as a client app (client credentials, scope ending ``/.default``, and then
``x-api-caller-id`` on every call). Every call carries the APIM subscription key; HTTPS only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_vendorauth.auth.grants import Attempt, TokenRequest, oauth2_request
from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.vendors.fields import ExtraField, user_password_field, username_field
from airflow_vendorauth.vendors.microsoft import (
    ENTRA_CREDENTIAL_FIELDS,
    ENTRA_IDENTITY,
    SUBSCRIPTION_KEY,
    TENANT_ID,
    apim_headers,
    workload_identity,
)
from airflow_vendorauth.vendors.profile import ConnectionSettings, VendorProfile, client_credentials

CLIENT_CREDENTIALS = "client_credentials"
PASSWORD = "password"
#: The scope ending each grant requires, per Keyavi's document.
SCOPE_ENDINGS = {CLIENT_CREDENTIALS: "/.default", PASSWORD: "/access_as_user"}


def _is_password_grant(extras: Mapping[str, Any]) -> bool:
    return extras.get("grant_type") == PASSWORD


def _is_app_grant(extras: Mapping[str, Any]) -> bool:
    return extras.get("grant_type") == CLIENT_CREDENTIALS


def _token_request(s: ConnectionSettings, attempt: Attempt) -> TokenRequest:
    grant = {"grant_type": s.extra("grant_type"), "scope": s.extra("scope")}
    if s.extra("grant_type") == PASSWORD:
        grant |= {"username": s.extra("username"), "password": s.extra("user_password")}
    return oauth2_request(attempt.token_url, grant, client_credentials(s, "client_secret_post"))


def _headers(s: ConnectionSettings) -> dict[str, str]:
    headers = apim_headers(s.extra("subscription_api_key"))
    if s.extra("grant_type") == CLIENT_CREDENTIALS:
        headers["x-api-caller-id"] = s.extra("caller_id")
    return headers


def _validate(s: ConnectionSettings) -> None:
    grant = s.extra("grant_type")
    ending = SCOPE_ENDINGS[grant]
    if not str(s.extra("scope")).endswith(ending):
        raise ConnectionConfigError(
            s.conn_id,
            "scope",
            f"is {s.extra('scope')!r}, which does not end with {ending!r} as the {grant} grant requires",
            f"use the API's application ID URI followed by {ending}, e.g. api://<app-id>{ending}",
        )


def _pagination(settings: ConnectionSettings) -> object:
    from airflow_vendorauth.pagination import PageNumberPagination

    return PageNumberPagination(
        page_param="page",
        size_param="pageSize",
        page_size=100,
        records_path="data",
        total_path="pagination.totalRecords",
    )


KEYAVI = VendorProfile(
    conn_type="keyavi",
    display_name="Keyavi",
    hook_class_name="airflow_vendorauth.hooks.keyavi.KeyaviHook",
    default_host=None,
    host_placeholder="https://<custom API URL>/api",
    token_url_template="https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token",
    build_token_request=_token_request,
    fields=(
        TENANT_ID,
        ExtraField(
            "scope",
            "Scope",
            "The API's application ID URI (or ID) plus /.default (client credentials) or /access_as_user "
            "(password grant), e.g. api://550e8400-e29b-41d4-a716-446655440000/.default",
            required=True,
            credential=True,
        ),
        ExtraField(
            "grant_type",
            "Grant type",
            "client_credentials (as a client app) or password (as a user).",
            choices=(CLIENT_CREDENTIALS, PASSWORD),
            default=CLIENT_CREDENTIALS,
            credential=True,
        ),
        username_field(
            "The user's name (password grant only).",
            required_when=_is_password_grant,
            required_reason="(the password grant needs it)",
        ),
        user_password_field(
            "The user's password (password grant only).",
            required_when=_is_password_grant,
            required_reason="(the password grant needs it)",
        ),
        SUBSCRIPTION_KEY,
        ExtraField(
            "caller_id",
            "Caller ID",
            "Email of the person or service the calls are made for, sent as x-api-caller-id (client "
            "credentials only), e.g. etl-service@example.com",
            required_when=_is_app_grant,
            required_reason="(client-app tokens carry no user, so every call must name one in x-api-caller-id)",
            credential=True,
        ),
        *ENTRA_CREDENTIAL_FIELDS,
    ),
    api_headers=_headers,
    validate=_validate,
    identity_extras=("scope", "grant_type", "username", "user_password", *ENTRA_IDENTITY),
    default_pagination=_pagination,
    max_concurrency=6,  # APIM in front, as for Kazi; a smaller default until Keyavi states a limit
    environment_defaults=workload_identity("/oauth2/v2.0/token"),
    header_names=lambda s: ("Ocp-Apim-Subscription-Key", "x-api-caller-id"),
)
