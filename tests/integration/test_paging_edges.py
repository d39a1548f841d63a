"""Issue 22's six cases through real Airflow: ``dag.test()`` of tests/dags/paging_edges.py against the
sandbox with its paging edges switched on, through the generic ``oauth2`` connection and a vendor's.
Each ends with every record exactly once and a summary equal to the file, or a failed task that names
the shortfall; retries on the same machine, on "another machine" (the partial file gone) and to object
storage (fsspec's ``memory://``, in this process) each end exactly once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pendulum
import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.conftest import load_test_dag

pytestmark = pytest.mark.integration

RECORDS = 500
#: The generic API by page numbers and by offsets, asking 100 a page, with its announced total.
OAUTH2_PAGES = {"style": "page_number", "page_size": 100, "records_path": "items", "total_path": "total"}
OAUTH2_OFFSETS = {"style": "offset", "limit": 100, "records_path": "items", "total_path": "total"}
OAUTH2_LINKS = {"style": "next_link", "next_path": "next", "records_path": "items", "total_path": "total"}
CLAZAR_LINKS = {"style": "next_link", "next_path": "next", "records_path": "results", "total_path": "count"}
KAZI = ("kazi_default", "/tagging/v2/expectations", "kazi.expectations")
CLAZAR = ("clazar_default", "/listings/", "clazar.listings")
OAUTH2 = ("oauth2_default", "/items", "oauth2.items")


def run_edges(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, target: tuple[str, str, str], output: str, **env: Any
) -> tuple[Any, list[Any]]:
    """dag.test() of paging_edges with ``target``'s dataset of RECORDS; (the run, the scan task's tries)."""
    conn, endpoint, dataset = target
    sandbox.configure(sizes={dataset: RECORDS})
    settings = {"EDGE_CONN": conn, "EDGE_ENDPOINT": endpoint, "EDGE_OUTPUT": output}
    settings |= {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in env.items()}
    for name in ("EDGE_PAGINATION", "EDGE_ASYNC", "EDGE_LOSE_PARTIAL", "EDGE_RETRIES", "EDGE_CONCURRENCY",
                 "EDGE_MAX_PAGES", "EDGE_FAIL_ON_SHORTFALL"):
        monkeypatch.delenv(name, raising=False)
    dag = load_test_dag("paging_edges", monkeypatch, **settings)
    run = dag.test(logical_date=pendulum.now("UTC"))
    return run, [ti for ti in run.get_task_instances() if ti.task_id == "scan"]


def ids_of(text: str) -> list[str]:
    return [json.loads(line)["id"] for line in text.splitlines()]


def scan_summary(run: Any) -> dict[str, Any]:
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "scan"]
    return ti.xcom_pull(task_ids="scan")  # type: ignore[no-any-return]


def assert_exactly_once(ids: list[str], summary: dict[str, Any], expected: int = RECORDS) -> None:
    assert len(ids) == expected and len(set(ids)) == expected  # every record, exactly once
    assert summary["records"] == len(ids)  # the summary is the file


CASE_1_CAP = [
    pytest.param(OAUTH2, {"EDGE_PAGINATION": OAUTH2_PAGES, "EDGE_CONCURRENCY": "1"}, id="oauth2-page_number-1"),
    pytest.param(OAUTH2, {"EDGE_PAGINATION": OAUTH2_OFFSETS}, id="oauth2-offset-auto"),
    pytest.param(KAZI, {}, id="kazi-default-auto"),
]


@pytest.mark.parametrize(("target", "env"), CASE_1_CAP)
def test_case_1_a_server_that_serves_fewer_than_asked(
    target: tuple[str, str, str], env: dict, vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = target[2].split(".")[0]
    vendor_sandbox.configure(paging={vendor: {"page_cap": 50}})
    out = tmp_path / "items.jsonl"
    run, _ = run_edges(monkeypatch, vendor_sandbox, target, str(out), **env)
    assert run.state == "success"
    summary = scan_summary(run)
    assert_exactly_once(ids_of(out.read_text()), summary)
    assert summary["pages"] == RECORDS // 50 and summary["expected_records"] == RECORDS


@pytest.mark.parametrize(
    ("target", "pagination", "kind"),
    [
        pytest.param(OAUTH2, OAUTH2_LINKS, "root", id="oauth2-root"),
        pytest.param(OAUTH2, OAUTH2_LINKS, "relative", id="oauth2-relative"),
        pytest.param(OAUTH2, OAUTH2_LINKS, "query", id="oauth2-query"),
        pytest.param(CLAZAR, CLAZAR_LINKS, "root", id="clazar-root"),
    ],
)
def test_case_2_relative_next_links_resolve_against_the_page_that_carried_them(
    target: tuple[str, str, str], pagination: dict, kind: str, vendor_sandbox: Sandbox, sandbox_connections: dict,
    airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = target[2].split(".")[0]
    vendor_sandbox.configure(paging={vendor: {"next_links": kind}})
    out = tmp_path / "items.jsonl"
    run, _ = run_edges(monkeypatch, vendor_sandbox, target, str(out), EDGE_PAGINATION=pagination)
    assert run.state == "success"
    assert_exactly_once(ids_of(out.read_text()), scan_summary(run))
    assert vendor_sandbox.stats()[vendor].get("status_404", 0) == 0  # no page asked under a wrong path


@pytest.mark.parametrize("lose_partial", [False, True], ids=["same-machine", "another-machine"])
@pytest.mark.parametrize("target", [OAUTH2, KAZI], ids=["oauth2", "kazi"])
def test_case_3_a_retry_ends_exactly_once_with_or_without_the_partial_file(
    target: tuple[str, str, str], lose_partial: bool, vendor_sandbox: Sandbox, sandbox_connections: dict,
    airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first try dies mid-scan (an HTML page after 3 pages: not retryable); Airflow retries it."""
    vendor = target[2].split(".")[0]
    vendor_sandbox.configure(paging={vendor: {"page_cap": 50}})
    vendor_sandbox.add_fault(vendor=vendor, route="/*", rate_html=1.0, after=3, count=1)
    out = tmp_path / "items.jsonl"
    pagination = {"EDGE_PAGINATION": OAUTH2_PAGES} if target is OAUTH2 else {}
    run, tries = run_edges(
        monkeypatch, vendor_sandbox, target, str(out), EDGE_RETRIES=1, EDGE_CONCURRENCY=1,
        EDGE_LOSE_PARTIAL="1" if lose_partial else "0", **pagination,
    )
    assert run.state == "success" and tries[0].try_number == 2
    assert_exactly_once(ids_of(out.read_text()), scan_summary(run))


@pytest.mark.parametrize("target", [OAUTH2, KAZI], ids=["oauth2", "kazi"])
def test_case_4_a_retry_to_object_storage_ends_exactly_once(
    target: tuple[str, str, str], vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = target[2].split(".")[0]
    vendor_sandbox.add_fault(vendor=vendor, route="/*", rate_html=1.0, after=3, count=1)
    path = f"/vendorauth-edges/{uuid.uuid4().hex}/items.jsonl"
    pagination = {"EDGE_PAGINATION": OAUTH2_PAGES} if target is OAUTH2 else {}
    run, tries = run_edges(
        monkeypatch, vendor_sandbox, target, f"memory://{path}", EDGE_RETRIES=1, EDGE_CONCURRENCY=1, **pagination
    )
    assert run.state == "success" and tries[0].try_number == 2
    assert_exactly_once(ids_of(fsspec.filesystem("memory").cat(path).decode()), scan_summary(run))


@pytest.mark.parametrize("target", [OAUTH2, KAZI], ids=["oauth2", "kazi"])
def test_case_5_concurrency_n_holds_at_most_n_requests_in_flight_async_too(
    target: tuple[str, str, str], vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """apaginate(concurrency=4) held 8 requests in flight (its fixed window had no gate)."""
    vendor = target[2].split(".")[0]
    vendor_sandbox.add_fault(vendor=vendor, route="/*", latency_ms=30)
    pagination = {"EDGE_PAGINATION": OAUTH2_PAGES} if target is OAUTH2 else {}
    vendor_sandbox.configure(paging={vendor: {"page_cap": 20}})  # 25 pages: room to fill a window
    run, _ = run_edges(
        monkeypatch, vendor_sandbox, target, str(tmp_path / "x.jsonl"), EDGE_CONCURRENCY=4, EDGE_ASYNC=1, **pagination
    )
    assert run.state == "success"
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "apaginate_in_flight"]
    assert ti.xcom_pull(task_ids="apaginate_in_flight") == RECORDS
    assert 1 < vendor_sandbox.stats()[vendor]["peak_in_flight"] <= 4


@pytest.mark.parametrize("target", [OAUTH2, KAZI], ids=["oauth2", "kazi"])
def test_case_6_a_total_the_pages_do_not_reach_fails_the_task_naming_both_numbers(
    target: tuple[str, str, str], vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = target[2].split(".")[0]
    vendor_sandbox.configure(paging={vendor: {"total_lie": 20}})  # announced 520, the pages end at 500
    out = tmp_path / "items.jsonl"
    pagination = {"EDGE_PAGINATION": OAUTH2_PAGES} if target is OAUTH2 else {}
    run, tries = run_edges(monkeypatch, vendor_sandbox, target, str(out), **pagination)
    assert run.state == "failed" and tries[0].state == "failed"
    assert not out.exists() and len(ids_of(Path(str(out) + ".partial").read_text())) == RECORDS  # no silent short file

    accepted = tmp_path / "accepted.jsonl"
    run, _ = run_edges(monkeypatch, vendor_sandbox, target, str(accepted), EDGE_FAIL_ON_SHORTFALL="0", **pagination)
    assert run.state == "success"
    summary = scan_summary(run)
    assert_exactly_once(ids_of(accepted.read_text()), summary)
    assert summary["expected_records"] == RECORDS + 20
