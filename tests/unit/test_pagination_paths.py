"""Keys that hold dots (issue 32, case 10): Microsoft Graph's ``@odata.nextLink`` and ``@odata.count`` are
reachable as written in every ``*_path``, and a list of keys names any key as is (pagination/paths.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_vendorauth.pagination import NextLinkPagination, PageRequest, PagingOptions, dig
from airflow_vendorauth.pagination.drivers import page_batches
from airflow_vendorauth.pagination.strategies import strategy_from_json

GRAPH = "https://graph.microsoft.com/v1.0/users"


@pytest.mark.parametrize(
    ("body", "path", "value"),
    [
        ({"@odata.nextLink": "u"}, "@odata.nextLink", "u"),  # Graph's own key, as written
        ({"@odata.nextLink": "u"}, ["@odata.nextLink"], "u"),  # the list form
        ({"links": {"@odata.nextLink": "u"}}, "links.@odata.nextLink", "u"),  # a dotted key one level down
        ({"links": {"next.href": "u"}}, ["links", "next.href"], "u"),
        ({"a": {"b": 1}}, "a.b", 1),  # plain nesting as before
        ({"a": [5, 6]}, "a.1", 6),
        ({"a": [5, 6]}, ["a", 1], 6),
        ({"a.b": {"c": 1}, "a": {"b": {"c": 2}}}, "a.b.c", 1),  # the longest key that matches wins
        ({"a.b": {"x": 1}, "a": {"b": {"c": 2}}}, "a.b.c", 2),  # ... and, where it leads nowhere, the split
        ({"a.b": 1, "a": {"b": 2}}, ["a", "b"], 2),  # a list splits nothing and joins nothing
        ({"x": 1}, None, {"x": 1}),
        ({"x": 1}, [], {"x": 1}),
    ],
)
def test_a_path_reaches_keys_that_hold_dots(body: Any, path: Any, value: Any) -> None:
    assert dig(body, path) == value


@pytest.mark.parametrize(("body", "path"), [({"@odata": {"x": 1}}, "@odata.nextLink"), ({"a.b": 1}, ["a", "b"]), ({"a": [1]}, "a.3")])
def test_a_path_that_leads_nowhere_is_a_key_error(body: Any, path: Any) -> None:
    with pytest.raises(KeyError):
        dig(body, path)


def graph_pages(request: PageRequest) -> httpx.Response:
    """Microsoft Graph's paging: ``value``, ``@odata.count`` (with $count=true), ``@odata.nextLink`` absent
    on the last page."""
    url = httpx.URL(request.url or f"{GRAPH}?$count=true")
    skip = int(url.params.get("$skiptoken", 0))
    body: dict[str, Any] = {"@odata.context": f"{GRAPH}/$metadata#users", "@odata.count": 7, "value": list(range(skip, min(skip + 3, 7)))}
    if skip + 3 < 7:
        body["@odata.nextLink"] = f"{GRAPH}?$count=true&$skiptoken={skip + 3}"
    return httpx.Response(200, json=body, request=httpx.Request("GET", url))


@pytest.mark.parametrize(
    "description",
    [
        {"style": "next_link", "next_path": "@odata.nextLink", "records_path": "value", "total_path": "@odata.count"},
        {"style": "next_link", "next_path": ["@odata.nextLink"], "records_path": ["value"], "total_path": ["@odata.count"]},
    ],
)
def test_a_graph_answer_pages_through_its_odata_next_link(description: dict) -> None:
    """Before: "@odata.nextLink" was split into "@odata" and "nextLink": one page of 3 of the 7 users."""
    scan = list(page_batches(graph_pages, strategy_from_json(description), PagingOptions(), "graph /users"))
    assert [r for b in scan for r in b.records] == list(range(7))
    assert scan[-1].total == 7  # @odata.count read too: the total is checked at the end


def test_the_extra_refuses_a_path_that_is_neither_a_string_nor_a_list_of_keys() -> None:
    with pytest.raises(ValueError, match=r"a path is a string .* or a list of keys"):
        strategy_from_json({"style": "next_link", "next_path": {"key": "@odata.nextLink"}})
    assert isinstance(strategy_from_json({"style": "next_link", "next_path": ["@odata.nextLink"]}), NextLinkPagination)
