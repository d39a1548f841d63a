"""The Clazar hook: everything it does is in :class:`VendorHook`; the vendor is in its profile."""

from __future__ import annotations

from typing import Any

from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.vendors.clazar import CLAZAR


class ClazarHook(VendorHook):
    """Calls the Clazar API with a cached, auto-refreshed token. Connection type ``clazar``."""

    profile = CLAZAR

    def __init__(self, clazar_conn_id: str = "clazar_default", **kwargs: Any) -> None:
        super().__init__(clazar_conn_id, **kwargs)
