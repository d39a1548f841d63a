"""The connection types, each described once in its own module: the five vendors and the generic
``oauth2`` type. A sixth vendor is one more module here."""

from __future__ import annotations

from airflow_vendorauth.vendors.clazar import CLAZAR
from airflow_vendorauth.vendors.kayzen import KAYZEN
from airflow_vendorauth.vendors.kazi import KAZI
from airflow_vendorauth.vendors.keyavi import KEYAVI
from airflow_vendorauth.vendors.oauth2 import OAUTH2
from airflow_vendorauth.vendors.profile import VendorProfile
from airflow_vendorauth.vendors.smartrecruiters import SMARTRECRUITERS

VENDORS: dict[str, VendorProfile] = {p.conn_type: p for p in (KAZI, KEYAVI, KAYZEN, SMARTRECRUITERS, CLAZAR, OAUTH2)}


def profile_for(conn_type: str) -> VendorProfile:
    try:
        return VENDORS[conn_type]
    except KeyError:
        raise ValueError(f"unknown vendor connection type {conn_type!r}; known: {', '.join(VENDORS)}") from None
