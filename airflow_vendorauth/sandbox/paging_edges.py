"""The paging edges real APIs produce, switchable per vendor (``POST /_admin/config`` with
``{"paging": {"kazi": {"page_cap": 50, "total_lie": 20, "next_links": "root"}}}``; ``oauth2`` is the
generic API), so a DAG can be tested against them: a server that serves fewer records a page than asked
(Kazi and SmartRecruiters cap at 100, many APIs at 50), from the first page or only from record
``cap_from`` on (a cap that drops mid-scan: page ranges stay those of the size asked, pages hold fewer),
a total that disagrees with the records, and next links that are relative URI references (RFC 3986
section 5) rather than absolute URLs.

The generic API (:func:`generic_page`) also answers in the shapes APIs page in without a word of
configuration on the client's side, for the ``oauth2`` type's recognition of paging: ``shape`` ``items``
(the default: ``{"items": [...], "total": N}`` plus an RFC 8288 ``Link: <...>; rel="next"`` header),
``graph`` (Microsoft Graph's ``{"value": [...], "@odata.nextLink": ..., "@odata.count": N}``) or ``list``
(the records as the body, the next page in the ``Link`` header); ``announce_total: false`` leaves the
total out; ``loop_at: N`` makes page N's next link point at page N again (a server stuck in a loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from airflow_vendorauth.sandbox.state import SandboxState

LINK_KINDS = ("absolute", "root", "relative", "query")
SHAPES = ("items", "graph", "list")


def served(state: SandboxState, vendor: str, asked: int, start: int = 0) -> int:
    """Records a page starting at record ``start`` holds: what was asked, at most the vendor's
    ``page_cap`` (from record ``cap_from`` on, when set)."""
    edges = state.paging.get(vendor, {})
    cap = edges.get("page_cap")
    if not cap or start < int(edges.get("cap_from") or 0):
        return asked
    return min(asked, int(cap))


def page_range(state: SandboxState, vendor: str, page: int, asked: int) -> tuple[int, int]:
    """(first record, records served) of page number ``page`` asked ``asked`` a page. A constant cap
    pages by the size served (page 2 of 50 starts at 50); a cap that drops at ``cap_from`` keeps the
    ranges of the size asked and cuts the pages past it short (page 3 of 100 is records 200-249)."""
    if state.paging.get(vendor, {}).get("cap_from") is None:
        size = served(state, vendor, asked)
        return (page - 1) * size, size
    start = (page - 1) * asked
    return start, served(state, vendor, asked, start)


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


def generic_page(
    state: SandboxState, request: Request, total: int, records: Callable[[range], list[Any]]
) -> tuple[Any, dict[str, str]]:
    """The generic API's answer to ``request`` (``page``/``per_page`` or ``offset``/``limit``, 20 a page
    by default) and its headers, in the ``oauth2`` edges' shape (see the module docstring)."""
    edges, q = state.paging.get("oauth2", {}), request.query_params
    if "offset" in q:  # offset paging (offset/limit) besides page numbers (page/per_page)
        start, page = int(q["offset"]), None
        size = served(state, "oauth2", int(q.get("limit", 20)), start)
        following: dict[str, Any] = {"offset": start + size}
    else:
        page = int(q.get("page", 1))
        start, size = page_range(state, "oauth2", page, int(q.get("per_page", 20)))
        stuck = edges.get("loop_at") is not None and page >= int(edges["loop_at"])
        following = {"page": page if stuck else page + 1}
    listed = records(range(min(start, total), min(start + size, total)))
    more = start + size < total or (page is not None and following["page"] == page)
    link = next_link(state, "oauth2", request, **following) if more else None
    count = announced(state, "oauth2", total) if edges.get("announce_total", True) else None
    shape = edges.get("shape", "items")
    if shape == "graph":  # Graph leaves @odata.nextLink out on the last page
        body: Any = {"@odata.context": f"{request.base_url}oauth2-api/$metadata#items", "value": listed}
        body |= {"@odata.count": count} if count is not None else {}
        return body | ({"@odata.nextLink": link} if link else {}), {}
    headers = {"Link": f'<{link}>; rel="next"'} if link else {}
    if shape == "list":
        return listed, headers
    body = {"items": listed, **({"total": count} if count is not None else {}), **({"page": page} if page is not None else {})}
    if "next_links" in edges:
        body["next"] = link
    return body, headers
