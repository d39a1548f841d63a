"""Clazar: client id and secret in a JSON body (a form is refused), day-long tokens.
Lists page with ``page``/``page_size`` and put records under ``results``."""

from __future__ import annotations

from airflow_vendorauth.auth.grants import json_client_credentials
from airflow_vendorauth.vendors.profile import ConnectionSettings, VendorProfile


def _pagination(settings: ConnectionSettings) -> object:
    from airflow_vendorauth.pagination import PageNumberPagination

    return PageNumberPagination(
        page_param="page", size_param="page_size", page_size=100, records_path="results", total_path="count"
    )


CLAZAR = VendorProfile(
    conn_type="clazar",
    display_name="Clazar",
    hook_class_name="airflow_vendorauth.hooks.clazar.ClazarHook",
    default_host="https://api.clazar.io",
    host_placeholder="https://api.clazar.io",
    token_url_template="{host}/authenticate/",
    build_token_request=lambda s, attempt: json_client_credentials(attempt.token_url, s.client_id, s.client_secret or ""),
    default_pagination=_pagination,
    max_concurrency=4,  # no documented limit: a conservative default
)
