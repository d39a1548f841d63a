"""The SmartRecruiters hook: everything it does is in :class:`VendorHook`; the vendor is in its profile."""

from __future__ import annotations

from typing import Any

from airflow_vendorauth.hooks.base import VendorHook
from airflow_vendorauth.vendors.smartrecruiters import SMARTRECRUITERS


class SmartRecruitersHook(VendorHook):
    """Calls the SmartRecruiters API with a cached, auto-refreshed token. Connection type ``smartrecruiters``."""

    profile = SMARTRECRUITERS

    def __init__(self, smartrecruiters_conn_id: str = "smartrecruiters_default", **kwargs: Any) -> None:
        super().__init__(smartrecruiters_conn_id, **kwargs)
