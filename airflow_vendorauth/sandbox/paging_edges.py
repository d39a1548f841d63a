"""The paging edges real APIs produce, switchable per vendor (``POST /_admin/config`` with
``{"paging": {"kazi": {"page_cap": 50, "total_lie": 20, "next_links": "root"}}}``; ``oauth2`` is the
generic API), so a DAG can be tested against them: a server that serves fewer records a page than asked
(Kazi and SmartRecruiters cap at 100, many APIs at 50), a total that disagrees with the records, and next
links that are relative URI references (RFC 3986 section 5) rather than absolute URLs."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from airflow_vendorauth.sandbox.state import SandboxState

LINK_KINDS = ("absolute", "root", "relative", "query")


def served(state: SandboxState, vendor: str, asked: int) -> int:
    """Records a page holds: what was asked, at most the vendor's ``page_cap``."""
    cap = state.paging.get(vendor, {}).get("page_cap")
    return min(asked, int(cap)) if cap else asked


def announced(state: SandboxState, vendor: str, total: int) -> int:
    """The total the API announces: the truth, or ``total_lie`` more (or fewer) records."""
    return max(0, total + int(state.paging.get(vendor, {}).get("total_lie", 0)))


def next_link(state: SandboxState, vendor: str, request: Request, **params: Any) -> str:
    """The URL of the next page as the vendor's ``next_links`` kind of reference (absolute by default)."""
    url = request.url.include_query_params(**params)
    kind = state.paging.get(vendor, {}).get("next_links", "absolute")
    if kind == "root":
        return f"{url.path}?{url.query}"
    if kind == "relative":
        return f"{url.path.rstrip('/').rsplit('/', 1)[-1]}{'/' if url.path.endswith('/') else ''}?{url.query}"
    if kind == "query":
        return f"?{url.query}"
    return str(url)
