"""No pagination described: the API's own paging, recognised from its first answer (as dlt's paginator
detector does), then followed as if the ``oauth2`` connection's ``pagination`` extra had described it.

What is recognised, in this order:

1. **the next page**: an RFC 8288 ``Link: <...>; rel="next"`` header; else a next link in the body under
   a common name, at the top (``next``, ``next_url``, ``nextLink``, ``@odata.nextLink``, ``next_page_url``...)
   or inside ``links``, ``_links``, ``paging``, ``pagination`` or ``meta`` (``links.next``, HAL's
   ``_links.next.href``); a link is a URI reference, resolved against the page that carried it;
2. **the records**: the answer itself when it is a list; else its list-valued field, a common name
   (``data``, ``items``, ``results``, ``value``, ``records``, ``content``...) winning over others, one level
   down when the top holds none (``{"data": {"items": [...]}}``);
3. **otherwise one page**: no next page, the records as found, or the whole body as one record.

Never taken for the last page, because records would be lost without a word: an answer that says more
records exist but gives no link to them (a cursor such as ``nextPageToken``, ``has_more: true``, a total
above the records, a page count above one), and an answer whose records cannot be told apart (two
lists of common names). Those are refused with an error naming the connection, the ``pagination`` extra
and an example of it, as is a next link in an answer without a list of records.

What was recognised is logged (one INFO line: the strategy and the records path) and carried, as a
description the ``pagination`` extra would give, by every request after the first
(:attr:`~.strategies.PageRequest.detected`): a checkpoint keeps it, so a resumed scan reads its pages
as the first try did. A next-link API pages one page at a time, whatever ``concurrency`` says.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_vendorauth.exceptions import PaginationError
from airflow_vendorauth.pagination.paths import KeyPath, show_path
from airflow_vendorauth.pagination.strategies import (
    NextLinkPagination,
    Page,
    PageRequest,
    Pagination,
    log,
    parse_body,
    served_url,
    strategy_from_json,
)
from airflow_vendorauth.redact import excerpt

RECORD_NAMES = frozenset(
    ("data", "items", "results", "result", "value", "values", "records", "content", "entries", "rows", "objects",
     "elements", "entities", "hits", "list", "nodes")
)
#: Fields that hold the answer's own bookkeeping, never its records; their lists are not candidates.
NON_RECORD_NAMES = frozenset(
    ("links", "_links", "meta", "metadata", "pagination", "paging", "page_info", "pageinfo", "errors", "warnings",
     "messages", "response_metadata")
)
LINK_NAMES = frozenset(
    ("next", "next_url", "nexturl", "next_link", "nextlink", "@odata.nextlink", "odata.nextlink", "next_page_url",
     "nextpageurl", "next_page_link", "nextpagelink", "next_href", "nexthref", "next_page", "nextpage")
)
#: Where a body keeps its links and counters: searched one level down.
CONTAINER_NAMES = frozenset(
    ("links", "_links", "paging", "pagination", "meta", "metadata", "page_info", "pageinfo", "response_metadata")
)
CURSOR_NAMES = frozenset(
    ("next_cursor", "nextcursor", "cursor", "next_page_token", "nextpagetoken", "nextpageid", "next_page_id",
     "next_token", "nexttoken", "continuation_token", "continuationtoken", "continuation", "after", "end_cursor",
     "endcursor", "scroll_id", "next_key", "nextkey", "lastevaluatedkey", "last_evaluated_key")
)
MORE_NAMES = frozenset(("has_more", "hasmore", "has_next", "hasnext", "has_next_page", "hasnextpage", "more",
                        "more_available", "moreavailable"))
TOTAL_NAMES = frozenset(
    ("total", "total_count", "totalcount", "count", "@odata.count", "odata.count", "total_results", "totalresults",
     "total_items", "totalitems", "total_records", "totalrecords", "totalfound", "totalamount", "total_size",
     "totalsize", "recordstotal", "num_results")
)
PAGES_NAMES = frozenset(("total_pages", "totalpages", "page_count", "pagecount", "amountofpages", "num_pages",
                         "last_page", "lastpage"))
ONE_PAGE = "one_page"


def _path(keys: tuple[str, ...]) -> KeyPath | None:
    """Keys as the extra would name them: ``"links.next"``, or a list when a key holds a dot."""
    if not keys:
        return None
    return ".".join(keys) if not any("." in key for key in keys) else list(keys)


def _looks_like_link(value: str) -> bool:
    """A URI reference to a page (absolute, /root-relative, ?query, relative with a query), not a cursor."""
    return value.startswith(("http://", "https://", "/", "?")) or "?" in value


@dataclass(frozen=True)
class _Field:
    keys: tuple[str, ...]
    value: Any


class _Answer:
    """The first answer's fields that may say something about paging: at the top, one level down in the
    containers (``links``, ``meta``...), and in ``within`` (the object that holds the records, when they
    are one level down); ``within=None``: in any object holding a list (where a next link is looked for
    before the records are known: ``{"data": {"items": [...], "next": ...}}``)."""

    def __init__(self, body: Any, within: tuple[str, ...] | None = ()) -> None:
        self.fields: list[_Field] = []
        if not isinstance(body, dict):
            return
        scopes: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), body)]
        for key, value in body.items():
            if not isinstance(value, dict):
                continue
            holds_records = (key,) == within or (within is None and any(isinstance(v, list) for v in value.values()))
            if key.lower() in CONTAINER_NAMES or holds_records:
                scopes.append(((str(key),), value))
        for prefix, scope in scopes:
            self.fields += [_Field((*prefix, str(key)), value) for key, value in scope.items()]

    def named(self, names: frozenset[str]) -> list[_Field]:
        return [f for f in self.fields if f.keys[-1].lower() in names]


def _next_link(answer: _Answer) -> tuple[tuple[str, ...] | None, _Field | None]:
    """(the keys of a next link, a next-page field that is no link): a link wins."""
    odd: _Field | None = None
    for field in answer.named(LINK_NAMES):
        value = field.value
        if isinstance(value, dict):
            for inner in ("href", "url", "link"):
                if isinstance(value.get(inner), str):
                    return (*field.keys, inner), None
        elif isinstance(value, str) and _looks_like_link(value):
            return field.keys, None
        elif value not in (None, "", False):
            odd = odd or field
    return None, odd


def _records(body: Any, following: bool) -> tuple[tuple[str, ...] | None, str | None]:
    """(the keys of the records: () for the answer itself, None for the whole body as one record; or the
    reason they cannot be told)."""
    if isinstance(body, list) or body is None:
        return (), None
    if not isinstance(body, dict):
        return None, None
    lists: list[tuple[str, ...]] = [
        (str(key),) for key, value in body.items() if isinstance(value, list) and key.lower() not in NON_RECORD_NAMES
    ]
    if not lists:
        lists = [
            (str(key), str(inner))
            for key, value in body.items()
            if isinstance(value, dict) and key.lower() not in NON_RECORD_NAMES
            for inner, listed in value.items()
            if isinstance(listed, list) and inner.lower() not in NON_RECORD_NAMES
        ]
    named = [keys for keys in lists if keys[-1].lower() in RECORD_NAMES]
    if len(named) == 1:
        return named[0], None
    if len(named) > 1 or (following and len(lists) > 1):
        shown = ", ".join(show_path(_path(keys)) for keys in (named or lists))
        return None, f"holds several lists ({shown}) and none is plainly the records"
    if len(lists) == 1:
        keys = lists[0]
        parent = dig_keys(body, keys[:-1])
        # an object with one list of objects and no id of its own is a page; {"id": 7, "tags": [...]} is a record
        if following or ("id" not in parent and all(isinstance(item, dict) for item in parent[keys[-1]])):
            return keys, None
    if following:
        return None, "names a next page but holds no list of records"
    return None, None


def dig_keys(body: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        body = body[key]
    return body


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _unfollowed_pages(answer: _Answer, odd: _Field | None, records: int) -> str | None:
    """What in an answer without a next link says more records exist, in words; None when nothing does."""
    if odd is not None:
        return f"gives the next page as {show_path(_path(odd.keys))} = {excerpt(str(odd.value), 40)!r}, which is no link"
    for field in answer.named(CURSOR_NAMES):
        if field.value not in (None, "", False, [], {}):
            return f"gives a cursor at {show_path(_path(field.keys))} (no link to the next page)"
    for field in answer.named(MORE_NAMES):
        if field.value is True:
            return f"says {show_path(_path(field.keys))} is true but links to no next page"
    for field in answer.named(TOTAL_NAMES):
        if (total := _int(field.value)) is not None and total > records:
            return f"announces {total} records at {show_path(_path(field.keys))} but holds {records} and links to no next page"
    for field in answer.named(PAGES_NAMES):
        if (pages := _int(field.value)) is not None and pages > 1:
            return f"announces {pages} pages at {show_path(_path(field.keys))} but links to no next page"
    return None


def _example(answer: _Answer, records: tuple[str, ...] | None, reason: str) -> str:
    """An example of the ``pagination`` extra for what the answer looks like."""
    records_path = _path(records) if records else "items"
    cursor = next((f for f in answer.named(CURSOR_NAMES) if f.value not in (None, "", False)), None)
    cursor = cursor or next(
        (f for f in answer.named(LINK_NAMES) if isinstance(f.value, str) and f.value and not _looks_like_link(f.value)), None
    )
    if cursor is not None:
        example: dict[str, Any] = {"style": "cursor", "next_cursor_path": _path(cursor.keys),
                                   "cursor_param": "<the query parameter that takes it>", "records_path": records_path}
    elif "no list of records" in reason or "several lists" in reason:
        example = {"style": "next_link", "records_path": records_path if records else "<the records' key>"}
    else:
        total = next((f for f in answer.named(TOTAL_NAMES) if _int(f.value) is not None), None)
        example = {"style": "page_number", "page_param": "page", "size_param": "per_page", "page_size": 100,
                   "records_path": records_path, **({"total_path": _path(total.keys)} if total else {})}
    return json.dumps(example)


@dataclass(frozen=True)
class Recognised:
    """The paging of an answer: a description the ``pagination`` extra would give (``next_link``), or
    ``one_page``; and the first page's records."""

    description: dict[str, Any]
    records: list[Any]

    @property
    def follows(self) -> bool:
        return self.description["style"] != ONE_PAGE

    def says(self) -> str:
        d = self.description
        records = f"records at {show_path(d['records_path'])}" if d.get("records_path") else (
            "the answer is the list of records" if d.get("records") == "list" else "the answer is one record")
        total = f", total at {show_path(d['total_path'])}" if d.get("total_path") else ""
        if not self.follows:
            return f"{ONE_PAGE} (no next page in the answer): {records}, {len(self.records)} in all{total}"
        link = f"next links at {show_path(d['next_path'])}" if d.get("next_path") else 'next links in the Link header (rel="next")'
        return f"next_link: {link}, {records}{total}"


def recognise(body: Any, headers: httpx.Headers, where: str) -> Recognised:
    """The paging of a first answer (see the module docstring), or a PaginationError saying how to set it."""
    header_link = httpx.Response(200, headers=headers).links.get("next", {}).get("url")
    link, odd = (None, None) if header_link else _next_link(_Answer(body, within=None))
    following = bool(header_link or link)
    records, problem = _records(body, following)
    answer = _Answer(body, within=records[:-1] if records else ())  # what the page says of its records
    if problem is None:
        listed: list[Any] = [body] if records is None else [] if body is None else dig_keys(body, records)
        if not following:
            problem = _unfollowed_pages(answer, odd, len(listed))
    if problem is not None:
        raise PaginationError(
            f"{where}: no pagination is set and the first answer {problem}, so its paging cannot be followed "
            f"as it is. Describe it in the connection's pagination extra (or pass pagination=), e.g. "
            f"{_example(answer, records, problem)}"
        )
    description: dict[str, Any] = {"style": "next_link" if following else ONE_PAGE, "records_path": _path(records or ())}
    if records == ():
        description["records"] = "list"
    if link:
        description["next_path"] = _path(link)
    totals = [f for f in answer.named(TOTAL_NAMES) if _int(f.value) is not None]
    if len(totals) == 1:  # a check at the end of the scan (fail_on_shortfall), never a plan
        description["total_path"] = _path(totals[0].keys)
    return Recognised(description, listed)


def _strategy(description: Mapping[str, Any]) -> NextLinkPagination:
    options = {k: v for k, v in description.items() if k != "records"}
    strategy = strategy_from_json(options)
    assert isinstance(strategy, NextLinkPagination)
    return strategy


@dataclass
class DetectedPagination(Pagination):
    """The paging of an ``oauth2`` connection without a ``pagination`` extra: recognised from the first
    answer (see the module docstring). Holds no state: what was recognised rides on the requests (and
    takes no settings: a connection that needs any describes its paging in the ``pagination`` extra)."""

    records_path: KeyPath | None = dataclasses.field(default=None, init=False, repr=False)

    def first(self, params: Mapping[str, Any]) -> PageRequest:
        return PageRequest(dict(params))

    def read(self, response: httpx.Response, request: PageRequest, where: str) -> Page:
        if request.detected is not None:  # a later page, or a resumed scan: as recognised on the first
            return _strategy(request.detected).read(response, request, where)
        body = parse_body(response, request, where)
        found = recognise(body, response.headers, where)
        log.info("%s: no pagination set; recognised from the first answer: %s", where, found.says())
        request = dataclasses.replace(request, detected=found.description)
        return Page(body, found.records, request, response.headers, served_url(response), where)

    def next(self, page: Page) -> PageRequest | None:
        description = page.request.detected
        if description is None or description["style"] == ONE_PAGE:
            return None
        following = _strategy(description).next(page)
        return dataclasses.replace(following, detected=description) if following is not None else None

    def announced_total(self, page: Page) -> int | None:
        description = page.request.detected or {}
        return self._total(page.body, description.get("total_path"))
