"""The Kayzen hook: everything it does is in :class:`VendorHook`; the vendor is in its profile."""

from __future__ import annotations

from typing import Any

from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.vendors.kayzen import KAYZEN


class KayzenHook(VendorHook):
    """Calls the Kayzen API with a cached, auto-refreshed token. Connection type ``kayzen``."""

    profile = KAYZEN

    def __init__(self, kayzen_conn_id: str = "kayzen_default", **kwargs: Any) -> None:
        super().__init__(kayzen_conn_id, **kwargs)
