"""The Keyavi hook: everything it does is in :class:`VendorHook`; the vendor is in its profile."""

from __future__ import annotations

from typing import Any

from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.vendors.keyavi import KEYAVI


class KeyaviHook(VendorHook):
    """Calls the Keyavi API with a cached, auto-refreshed token. Connection type ``keyavi``."""

    profile = KEYAVI

    def __init__(self, keyavi_conn_id: str = "keyavi_default", **kwargs: Any) -> None:
        super().__init__(keyavi_conn_id, **kwargs)
