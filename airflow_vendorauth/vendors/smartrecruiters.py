"""SmartRecruiters: standard client credentials in a form; ``token_type`` comes as lower-case
``bearer``. Lists page by cursor: ``limit`` (max 100) and ``pageId``, next one in ``nextPageId``."""

from __future__ import annotations

from airflow_vendorauth.auth.grants import oauth2_request
from airflow_vendorauth.vendors.profile import ConnectionSettings, VendorProfile, client_credentials


def _pagination(settings: ConnectionSettings) -> object:
    from airflow_vendorauth.pagination import CursorPagination

    return CursorPagination(
        cursor_param="pageId", next_cursor_path="nextPageId", records_path="content", limit_param="limit", limit=100,
        total_path="totalFound",  # checked against the records at the end of a scan
    )


SMARTRECRUITERS = VendorProfile(
    conn_type="smartrecruiters",
    display_name="SmartRecruiters",
    hook_class_name="airflow_vendorauth.hooks.smartrecruiters.SmartRecruitersHook",
    default_host="https://api.smartrecruiters.com",
    host_placeholder="https://api.smartrecruiters.com",
    token_url_template="{host}/identity/oauth/token",
    build_token_request=lambda s, attempt: oauth2_request(
        attempt.token_url, {"grant_type": "client_credentials"}, client_credentials(s, "client_secret_post")
    ),
    default_pagination=_pagination,
    max_concurrency=8,  # its documented limit: about 8 concurrent requests per credential
)
