"""What Kazi and Keyavi share, since both sit on Microsoft Entra ID and Azure API Management:
the tenant, the APIM subscription key, and certificate credentials (``private_key_jwt``) in place of a
client secret, which many Entra tenants require."""

from __future__ import annotations

from airflow_vendorauth.vendors.fields import (
    SUBSCRIPTION_KEY,
    TENANT_ID,
    ExtraField,
    certificate_fields,
    client_auth_field,
)

#: A client secret (the connection's password) or a certificate: the fields of the choice.
ENTRA_CREDENTIAL_FIELDS: tuple[ExtraField, ...] = (
    client_auth_field(
        ("client_secret_post", "private_key_jwt"),
        "client_secret_post",
        "client_secret_post: the Client secret; private_key_jwt: a certificate registered in Entra ID "
        "(fill in Private key and Certificate, leave Client secret empty).",
    ),
    *certificate_fields(certificate_required=True),
)
#: Extras that tell one Entra credential from another, besides URL, client id and secret.
ENTRA_IDENTITY = ("client_auth", "private_key", "key_id")


def apim_headers(subscription_key: str) -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": subscription_key}


__all__ = ["ENTRA_CREDENTIAL_FIELDS", "ENTRA_IDENTITY", "SUBSCRIPTION_KEY", "TENANT_ID", "apim_headers"]
