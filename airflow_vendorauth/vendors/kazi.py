"""Kazi: Azure AD v1 client credentials with ``resource``, plus an APIM subscription key.

Token answers carry ``expires_in``/``expires_on`` as strings and a JWT whose ``roles`` claim lists
the granted Kazi scopes (``read:expectations``...). Tagging API v2 pages with ``page``/``pageSize``.
"""

from __future__ import annotations

from typing import Literal

from airflow_vendorauth.auth.grants import Attempt, TokenRequest, oauth2_request
from airflow_vendorauth.vendors.fields import ExtraField
from airflow_vendorauth.vendors.microsoft import (
    ENTRA_CREDENTIAL_FIELDS,
    ENTRA_IDENTITY,
    SUBSCRIPTION_KEY,
    TENANT_ID,
    apim_headers,
    workload_identity,
)
from airflow_vendorauth.vendors.profile import ConnectionSettings, VendorProfile, client_credentials


def _token_request(s: ConnectionSettings, attempt: Attempt) -> TokenRequest:
    grant = {"grant_type": "client_credentials", "resource": s.extra("resource")}
    return oauth2_request(attempt.token_url, grant, client_credentials(s, "client_secret_post"))


def _pagination(settings: ConnectionSettings) -> object:
    from airflow_vendorauth.pagination import PageNumberPagination

    return PageNumberPagination(
        page_param="page",
        size_param="pageSize",
        page_size=100,
        records_path="data",
        total_path="pagination.totalAmount",
    )


#: Scan statuses in the sandbox's model of the Tagging API v2: still going, and done well.
SCAN_ACTIVE_STATUSES = frozenset({"Queued", "Running"})
SCAN_SUCCEEDED_STATUSES = frozenset({"Succeeded"})

ScanOutcome = Literal["running", "succeeded", "failed"]


def scan_outcome(status: str) -> ScanOutcome:
    """What a scan's status means; the operator's poll loop and the trigger both decide with this."""
    if status in SCAN_SUCCEEDED_STATUSES:
        return "succeeded"
    return "running" if status in SCAN_ACTIVE_STATUSES else "failed"

KAZI = VendorProfile(
    conn_type="kazi",
    display_name="Kazi",
    hook_class_name="airflow_vendorauth.hooks.kazi.KaziHook",
    default_host=None,
    host_placeholder="https://api.kazi.be",
    token_url_template="https://login.microsoftonline.com/{tenant_id}/oauth2/token",
    build_token_request=_token_request,
    fields=(
        TENANT_ID,
        ExtraField(
            "resource",
            "Resource",
            "Application ID URI or GUID of the Kazi API, sent as the v1 'resource' parameter, "
            "e.g. d00b610c-389f-4a05-97cc-f9a934488c8b",
            required=True,
            credential=True,
        ),
        SUBSCRIPTION_KEY,
        *ENTRA_CREDENTIAL_FIELDS,
    ),
    api_headers=lambda s: apim_headers(s.extra("subscription_api_key")),
    identity_extras=("resource", *ENTRA_IDENTITY),
    issues_jwt=True,
    default_pagination=_pagination,
    max_concurrency=8,  # Azure API Management in front answers 429 with Retry-After past its rate
    environment_defaults=workload_identity("/oauth2/token"),
    header_names=lambda s: ("Ocp-Apim-Subscription-Key",),
)
