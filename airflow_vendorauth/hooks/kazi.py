"""The Kazi hook: everything it does is in :class:`VendorHook`; the vendor is in its profile."""

from __future__ import annotations

from typing import Any

from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.vendors.kazi import KAZI


class KaziHook(VendorHook):
    """Calls the Kazi API with a cached, auto-refreshed token. Connection type ``kazi``."""

    profile = KAZI

    def __init__(self, kazi_conn_id: str = "kazi_default", **kwargs: Any) -> None:
        super().__init__(kazi_conn_id, **kwargs)
