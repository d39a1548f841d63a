"""Issue 32 cases 1 and 10, issue 31 cases 10 and 11, through real Airflow and the real sandbox: an
``oauth2`` connection without a ``pagination`` extra pages the API as its first answer shows (hooks from
a Connection, and ``VendorApiOperator`` under ``dag.test()``, resumed by a retry); Microsoft Graph's
``@odata.nextLink`` named in the extra; a page size that drops mid-scan on an API without a total; an API
stuck in a loop, caught by the loop guard within a bound."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.test_paging_edges import RECORDS, assert_exactly_once, ids_of, run_edges, scan_summary

pytestmark = pytest.mark.integration

#: The generic API through a connection as two of the README's four oauth2 examples are: no pagination extra.
BARE = ("oauth2_bare", "/items", "oauth2.items")
GRAPH = {"style": "next_link", "next_path": "@odata.nextLink", "records_path": "value", "total_path": "@odata.count"}


def task_log(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """What the tasks of a dag.test() said (their log records, and what reached the terminal)."""
    out, err = capfd.readouterr()
    return caplog.text + out + err


@pytest.fixture
def bare_connection(sandbox_connections: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(sandbox_connections["AIRFLOW_CONN_OAUTH2_DEFAULT"])
    del conn["extra"]["pagination"]
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_BARE", json.dumps(conn))


@pytest.mark.parametrize("shape", ["items", "graph", "list"])
def test_hooks_from_a_connection_without_pagination_page_the_api_as_it_answers(
    shape: str, vendor_sandbox: Sandbox, bare_connection: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: AttributeError: 'NoneType' object has no attribute 'first'. ``items``: the records under
    ``items`` and a ``Link: rel=next`` header; ``graph``: ``value`` and ``@odata.nextLink``; ``list``: the
    records as the body and the Link header."""
    from airflow_vendorauth.hooks.base import hook_for_connection

    vendor_sandbox.configure(sizes={"oauth2.items": 230}, paging={"oauth2": {"shape": shape}})
    caplog.set_level(logging.INFO, logger="airflow_vendorauth.pagination")
    with hook_for_connection("oauth2_bare") as hook:
        assert len({r["id"] for r in hook.paginate("/items")}) == 230

    async def apaginate() -> list[Any]:
        ahook = hook_for_connection("oauth2_bare")
        try:
            return [r async for r in ahook.apaginate("/items")]
        finally:
            await ahook.aclose()

    assert len({r["id"] for r in asyncio.run(apaginate())}) == 230
    assert vendor_sandbox.api_requests("oauth2") == 2 * 12  # 20 a page (the API's default): 12 pages, none twice
    said = [r.getMessage() for r in caplog.records if "recognised from the first answer" in r.getMessage()]
    assert len(said) == 2 and all("'oauth2_bare'" in line and "next_link" in line for line in said)


@pytest.mark.parametrize("concurrency", ["auto", "1"])
def test_the_operator_without_pagination_writes_every_record_once_one_page_at_a_time(
    concurrency: str, vendor_sandbox: Sandbox, bare_connection: None, airflow_db: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    vendor_sandbox.add_fault(vendor="oauth2", route="/*", latency_ms=20)  # room for pages to overlap, if they could
    out = tmp_path / "items.jsonl"
    run, _ = run_edges(monkeypatch, vendor_sandbox, BARE, str(out), EDGE_CONCURRENCY=concurrency)
    assert run.state == "success"
    summary = scan_summary(run)
    assert_exactly_once(ids_of(out.read_text()), summary)
    assert summary["expected_records"] == RECORDS  # the total recognised too: checked at the end
    assert vendor_sandbox.stats()["oauth2"]["peak_in_flight"] == 1  # a next link is known only page by page
    assert "recognised from the first answer: next_link: next links in the Link header" in task_log(caplog, capfd)


def test_a_retry_resumes_a_recognised_scan_exactly_once(
    vendor_sandbox: Sandbox, bare_connection: None, airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try dies after 3 pages (an HTML page: not retried); the retry resumes from the checkpoint,
    which carries the paging recognised on the first page."""
    vendor_sandbox.configure(paging={"oauth2": {"shape": "graph"}})
    vendor_sandbox.add_fault(vendor="oauth2", route="/*", rate_html=1.0, after=3, count=1)
    out = tmp_path / "items.jsonl"
    run, tries = run_edges(monkeypatch, vendor_sandbox, BARE, str(out), EDGE_RETRIES=1)
    assert run.state == "success" and tries[0].try_number == 2
    assert_exactly_once(ids_of(out.read_text()), scan_summary(run))
    assert vendor_sandbox.api_requests("oauth2") == RECORDS // 20 + 1  # 25 pages and the one that failed


def test_graphs_odata_next_link_is_named_in_the_pagination_extra(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 32 case 10: before, "@odata.nextLink" was split at its dot: one page of 20 of 500 records."""
    vendor_sandbox.configure(paging={"oauth2": {"shape": "graph"}})
    out = tmp_path / "users.jsonl"
    run, _ = run_edges(monkeypatch, vendor_sandbox, ("oauth2_default", "/items", "oauth2.items"), str(out), EDGE_PAGINATION=GRAPH)
    assert run.state == "success"
    summary = scan_summary(run)
    assert_exactly_once(ids_of(out.read_text()), summary)
    assert summary["expected_records"] == RECORDS  # "@odata.count" read as written too


OFFSETS = {"style": "offset", "limit": 100, "records_path": "items"}
PAGES = {"style": "page_number", "page_size": 100, "records_path": "items"}


@pytest.mark.parametrize("concurrency", ["1", "auto"])
def test_offsets_without_a_total_go_on_past_a_page_size_that_drops_mid_scan(
    concurrency: str, vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 31 case 10: 100 a page, 50 from record 200 on, no total. Before: 250 of 500 records, success."""
    vendor_sandbox.configure(paging={"oauth2": {"page_cap": 50, "cap_from": 200, "announce_total": False}})
    out = tmp_path / "items.jsonl"
    run, _ = run_edges(
        monkeypatch, vendor_sandbox, ("oauth2_default", "/items", "oauth2.items"), str(out),
        EDGE_PAGINATION=OFFSETS, EDGE_CONCURRENCY=concurrency,
    )
    assert run.state == "success"
    summary = scan_summary(run)
    assert_exactly_once(ids_of(out.read_text()), summary)
    assert summary["expected_records"] is None
    assert vendor_sandbox.api_requests("oauth2") == 2 + 6 + 1  # the empty page that confirms the end: one request more


@pytest.mark.parametrize("concurrency", ["1", "auto"])
def test_page_numbers_without_a_total_fail_on_a_page_size_that_drops_mid_scan(
    concurrency: str, vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    """Page 3 holds records 200-249, page 4 300-349: records 250-299 cannot be asked for by page number.
    Before: 250 of 500 records and a green task; now a failed task naming the page and the fix."""
    vendor_sandbox.configure(paging={"oauth2": {"page_cap": 50, "cap_from": 200, "announce_total": False}})
    out = tmp_path / "items.jsonl"
    run, tries = run_edges(
        monkeypatch, vendor_sandbox, ("oauth2_default", "/items", "oauth2.items"), str(out),
        EDGE_PAGINATION=PAGES, EDGE_CONCURRENCY=concurrency,
    )
    assert run.state == "failed" and tries[0].state == "failed"
    assert not out.exists()  # no silent short file
    said = task_log(caplog, capfd)
    assert "page 3 held fewer records than the 100 a page before it, yet page 4 holds 50 more" in said
    assert "(connection 'oauth2_default')" in said


def test_kayzen_still_ends_on_its_short_last_page_with_one_request_more(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kayzen announces no total ("stop on an empty or short page"). 500 records served 30 a page: 16
    full pages and a short page 17, confirmed by an empty page 18: one request more, which the sandbox
    counts and the summary shows."""
    vendor_sandbox.configure(paging={"kayzen": {"page_cap": 30}})
    out = tmp_path / "campaigns.jsonl"
    run, _ = run_edges(monkeypatch, vendor_sandbox, ("kayzen_default", "/v1/meta/campaigns", "kayzen.campaigns"), str(out))
    assert run.state == "success"
    summary = scan_summary(run)
    assert_exactly_once(ids_of(out.read_text()), summary)
    assert vendor_sandbox.api_requests("kayzen") == summary["pages"] == 18


def test_an_api_stuck_in_a_loop_fails_the_task_within_its_bound(
    vendor_sandbox: Sandbox, bare_connection: None, airflow_db: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    """Issue 31 case 11: page 3's next link is page 3. The loop guard fails the task at once; without it,
    the scan would run to its bound (max_pages) and succeed, so this test fails instead of hanging."""
    vendor_sandbox.configure(paging={"oauth2": {"loop_at": 3}})
    out = tmp_path / "items.jsonl"
    run, _ = run_edges(monkeypatch, vendor_sandbox, BARE, str(out), EDGE_MAX_PAGES=40)
    assert run.state == "failed"
    assert "the API sent the same next page twice" in task_log(caplog, capfd)
    assert vendor_sandbox.api_requests("oauth2") == 3  # pages 1, 2, 3; page 3 again is refused before it is asked


def test_the_readmes_password_grant_example_without_pagination_pages_the_api(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 32 case 1 as found: the README's oauth2 example of the password grant (it has no pagination)
    as printed, pointed at the sandbox, pages the generic API with OAuth2Hook.paginate()."""
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
    from airflow_vendorauth.sandbox.connections import oauth2_connection
    from tests.integration.test_readme import connections_of
    from tests.readme import blocks

    (block,) = [b for b in blocks(kind="connections") if "AIRFLOW_CONN_ITEMS_AS_ANA" in b.body]
    printed = json.loads(connections_of(block, tmp_path)["AIRFLOW_CONN_ITEMS_AS_ANA"])
    assert "pagination" not in printed["extra"]
    extra = printed["extra"]
    sandbox = oauth2_connection(vendor_sandbox.url, grant_type=extra["grant_type"], client_auth=extra["client_auth"],
                                credentials=vendor_sandbox.credentials)
    printed |= {k: sandbox[k] for k in ("host", "login", "password")}
    extra |= {k: sandbox["extra"][k] for k in ("username", "user_password")} | {"auth_url": f"{vendor_sandbox.url}/oauth2/token"}
    monkeypatch.setenv("AIRFLOW_CONN_ITEMS_AS_ANA", json.dumps(printed))
    vendor_sandbox.configure(sizes={"oauth2.items": 130})
    with OAuth2Hook("items_as_ana") as hook:
        assert len({r["id"] for r in hook.paginate("/items")}) == 130


def test_a_404_past_the_end_after_a_short_page_is_the_end(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clazar (as Django REST framework) answers a page past the end with 404 "Invalid page.". Paged by
    numbers without its total described, served 30 a page: the short page 17 is confirmed by page 18's 404."""
    vendor_sandbox.configure(paging={"clazar": {"page_cap": 30}})
    out = tmp_path / "listings.jsonl"
    no_total = {"style": "page_number", "page_param": "page", "size_param": "page_size", "page_size": 100, "records_path": "results"}
    run, _ = run_edges(monkeypatch, vendor_sandbox, ("clazar_default", "/listings/", "clazar.listings"), str(out),
                       EDGE_PAGINATION=no_total)
    assert run.state == "success"
    assert_exactly_once(ids_of(out.read_text()), scan_summary(run))
    stats = vendor_sandbox.stats()["clazar"]
    assert stats["api_requests"] == 18 and stats["status_404"] == 1
