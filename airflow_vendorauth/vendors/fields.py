"""Extras that more than one vendor uses, declared once."""

from __future__ import annotations

from airflow_vendorauth.vendors.profile import ExtraField

TENANT_ID = ExtraField(
    "tenant_id",
    "Tenant ID",
    "Microsoft Entra tenant of the application; builds the default token URL (not needed when token_url is set).",
    placeholder="00000000-0000-0000-0000-000000000000",
)
SUBSCRIPTION_KEY = ExtraField(
    "subscription_key",
    "Subscription key",
    "API Management subscription key, sent as Ocp-Apim-Subscription-Key on every API call.",
    secret=True,
    required=True,
)


def username_field(description: str, *, required: bool = False, **rules: object) -> ExtraField:
    return ExtraField("username", "Username", description, "user@example.com", required=required, **rules)  # type: ignore[arg-type]


def user_password_field(description: str, *, required: bool = False, **rules: object) -> ExtraField:
    return ExtraField("user_password", "User password", description, secret=True, required=required, **rules)  # type: ignore[arg-type]
