"""What Kazi and Keyavi share, since both sit on Microsoft Entra ID and Azure API Management:
the tenant, the APIM subscription key, and, in place of a client secret (which many Entra tenants
forbid), certificate credentials (``private_key_jwt``) or workload identity federation (``federated``:
Entra's federated identity credentials, with the token AKS projects into the pod)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from airflow_vendorauth.vendors.fields import (
    SUBSCRIPTION_KEY,
    TENANT_ID,
    ExtraField,
    certificate_fields,
    client_auth_field,
    federation_field,
)
from airflow_vendorauth.vendors.settings import RawConnection

#: What the AKS workload identity webhook injects into a pod (and azure-identity reads).
AKS_TOKEN_FILE, AKS_CLIENT_ID, AKS_TENANT_ID, AKS_AUTHORITY = (
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
)

#: A client secret (the connection's password), a certificate or a federated token: the fields of the choice.
ENTRA_CREDENTIAL_FIELDS: tuple[ExtraField, ...] = (
    client_auth_field(
        ("client_secret_post", "private_key_jwt", "federated"),
        "client_secret_post",
        "client_secret_post: the Client secret; private_key_jwt: a certificate registered in Entra ID "
        "(fill in Private key and Certificate, leave Client secret empty); federated: workload identity "
        "(a federated identity credential on the app; the pod's projected token is sent, no secret).",
    ),
    *certificate_fields(certificate_required=True),
    federation_field(default_env=AKS_TOKEN_FILE),
)
#: Extras that tell one Entra credential from another, besides URL, client id and secret.
ENTRA_IDENTITY = ("client_auth", "private_key", "key_id", "assertion_file")


def workload_identity(token_path: str) -> Callable[[RawConnection], RawConnection]:
    """For ``client_auth: federated``, what the connection leaves empty comes from the variables AKS injects:
    Client ID from AZURE_CLIENT_ID, Tenant ID from AZURE_TENANT_ID, Assertion file from
    AZURE_FEDERATED_TOKEN_FILE, and the token URL's authority from AZURE_AUTHORITY_HOST (sovereign clouds).
    ``token_path`` follows the tenant in the token URL (``/oauth2/v2.0/token``)."""

    def fill(raw: RawConnection) -> RawConnection:
        if raw.extra.get("client_auth") != "federated":
            return raw
        extra = dict(raw.extra)
        for name, variable in (("assertion_file", AKS_TOKEN_FILE), ("tenant_id", AKS_TENANT_ID)):
            if not extra.get(name) and os.environ.get(variable):
                extra[name] = os.environ[variable]
        authority = os.environ.get(AKS_AUTHORITY)
        if not extra.get("auth_url") and not extra.get("token_url") and authority and extra.get("tenant_id"):
            extra["auth_url"] = f"{authority.rstrip('/')}/{extra['tenant_id']}{token_path}"
        return replace(raw, login=raw.login or os.environ.get(AKS_CLIENT_ID), extra=extra)

    return fill


def apim_headers(subscription_key: str) -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": subscription_key}


__all__ = ["ENTRA_CREDENTIAL_FIELDS", "ENTRA_IDENTITY", "SUBSCRIPTION_KEY", "TENANT_ID", "apim_headers"]
