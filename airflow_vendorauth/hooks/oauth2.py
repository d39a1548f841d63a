"""The generic OAuth 2.0 hook: any OAuth-protected API, described by its connection (type ``oauth2``)."""

from __future__ import annotations

from typing import Any

from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.vendors.oauth2 import OAUTH2


class OAuth2Hook(VendorHook):
    """Calls any OAuth 2.0 API with a cached, auto-refreshed token. Connection type ``oauth2``."""

    profile = OAUTH2

    def __init__(self, oauth2_conn_id: str = "oauth2_default", **kwargs: Any) -> None:
        super().__init__(oauth2_conn_id, **kwargs)
