"""Kayzen: password grant behind ``Authorization: Basic base64(api_key:api_secret)``, a form body,
30-minute tokens with ``expires_in`` as a string. List endpoints page with ``page``/``per_page``."""

from __future__ import annotations

from airflow_vendorauth.auth.grants import basic_password_form
from airflow_vendorauth.vendors.fields import user_password_field, username_field
from airflow_vendorauth.vendors.profile import ConnectionSettings, VendorProfile


def _pagination(settings: ConnectionSettings) -> object:
    from airflow_vendorauth.pagination import PageNumberPagination

    return PageNumberPagination(page_param="page", size_param="per_page", page_size=100, records_path="data")


KAYZEN = VendorProfile(
    conn_type="kayzen",
    display_name="Kayzen",
    hook_class_name="airflow_vendorauth.hooks.kayzen.KayzenHook",
    default_host="https://api.kayzen.io",
    host_placeholder="https://api.kayzen.io",
    token_url_template="{host}/v1/authentication/token",
    build_token_request=lambda s, attempt: basic_password_form(
        attempt.token_url, s.client_id, s.client_secret or "", s.extra("username"), s.extra("user_password")
    ),
    fields=(
        username_field("The email you log in to the Kayzen platform with.", required=True),
        user_password_field("Your Kayzen account password.", required=True),
    ),
    identity_extras=("username", "user_password"),
    login_label="API key",
    password_label="API secret",
    default_pagination=_pagination,
    max_concurrency=4,  # no documented limit: a conservative default
)
