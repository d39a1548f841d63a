"""SmartRecruiters: standard client credentials in a form; ``token_type`` comes as lower-case
``bearer``. Lists page by cursor: ``limit`` (max 100) and ``pageId``, next one in ``nextPageId``."""

from __future__ import annotations

from airflow_vendorauth.auth.grants import client_credentials_form
from airflow_vendorauth.vendors.profile import VendorProfile


def _pagination() -> object:
    from airflow_vendorauth.pagination import CursorPagination

    return CursorPagination(
        cursor_param="pageId", next_cursor_path="nextPageId", records_path="content", limit_param="limit", limit=100
    )


SMARTRECRUITERS = VendorProfile(
    conn_type="smartrecruiters",
    display_name="SmartRecruiters",
    hook_class_name="airflow_vendorauth.hooks.smartrecruiters.SmartRecruitersHook",
    default_host="https://api.smartrecruiters.com",
    host_placeholder="https://api.smartrecruiters.com",
    token_url_template="{host}/identity/oauth/token",
    build_token_request=lambda s: client_credentials_form(s.token_url, s.client_id, s.client_secret),
    default_pagination=_pagination,
)
