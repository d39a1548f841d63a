"""Pagination: declarative strategies (``strategies``), the paging loop written once (``walk``) and
its sync and async drivers (``drivers``). The names DAG authors use are importable from here."""

from airflow_vendorauth.pagination.strategies import (
    CursorPagination,
    NextLinkPagination,
    OffsetPagination,
    Page,
    PageNumberPagination,
    PageRequest,
    Pagination,
    dig,
)
from airflow_vendorauth.pagination.walk import PageBatch, PagingOptions

__all__ = [
    "CursorPagination",
    "NextLinkPagination",
    "OffsetPagination",
    "Page",
    "PageBatch",
    "PageNumberPagination",
    "PageRequest",
    "Pagination",
    "PagingOptions",
    "dig",
]
