"""A checkpoint carries the identity of its scan (operators/scan_identity.py): a scan never resumes another
scan's checkpoint (issue 31, case 4). Airflow keeps task_state_store across a clear, under the same key:
one test per part of the identity changes that part between a failed scan and the next one, which must
start over with exactly its own records and say what differed; the same scan still resumes.
The dag.test() version (a cleared task) is tests/integration/test_cleared_scan.py's."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pendulum
import pytest

from airflow_vendorauth.operators.output import Checkpoint
from airflow_vendorauth.operators.scan_identity import differences, scan_identity
from airflow_vendorauth.operators.streaming import stream_to_jsonl
from airflow_vendorauth.pagination import OffsetPagination, PageNumberPagination, PagingOptions
from tests.unit.test_operators_resume import DictStore, lines

LOG = logging.getLogger("test.scan_identity")
PAGING = PageNumberPagination(page_size=10, records_path="items", total_path="total")
SECRET_PARAM = "param-secret-value-77"
#: The same paging, described in an oauth2 connection's ``pagination`` extra.
PAGING_EXTRA = {"style": "page_number", "page_param": "page", "size_param": "per_page", "records_path": "items",
                "total_path": "total"}


class Api:
    """Records whose ids say which scan served them: ``{path}?{query}#{n}``; page ``fail_at`` fails once."""

    def __init__(self, records: int = 60, fail_at: int | None = None) -> None:
        self.records, self.fail_at = records, fail_at

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        q = request.url.params
        if "offset" in q:
            start, size = int(q["offset"]), int(q["limit"])
        else:
            size = int(q.get("per_page", 10))
            start = (int(q["page"]) - 1) * size
        if start // size + 1 == self.fail_at:
            self.fail_at = None
            return httpx.Response(400, json={"detail": "the task dies here"})
        scan = f"{request.url.path}?{'&'.join(f'{k}={v}' for k, v in sorted(q.items()) if k not in ('page', 'per_page', 'offset', 'limit'))}"
        items = [{"scan": scan, "n": i} for i in range(start, min(start + size, self.records))]
        return httpx.Response(200, json={"items": items, "total": self.records})


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, **extra: Any) -> None:
    """A clazar connection; with a ``pagination`` extra, the generic oauth2 type (whose paging it describes)."""
    conn_type = "oauth2" if "pagination" in extra else "clazar"
    if conn_type == "oauth2":
        extra = {"auth_url": "https://idp.example/token", **extra}
    conn = {"conn_type": conn_type, "host": "https://api.example", "login": "client", "password": "secret-42", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def run(
    monkeypatch: pytest.MonkeyPatch,
    api: Api,
    store: DictStore,
    out: str,
    *,
    conn_id: str = "clazar_a",
    endpoint: str = "/items",
    options: PagingOptions | None = None,
    connection_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from airflow_vendorauth.hooks.clazar import ClazarHook
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    connect(monkeypatch, conn_id, **(connection_extra or {}))
    options = options or PagingOptions(pagination=None if connection_extra else PAGING, concurrency=1)
    kind = OAuth2Hook if connection_extra else ClazarHook
    with kind(conn_id, transport=httpx.MockTransport(api)) as hook:
        return stream_to_jsonl(
            hook, endpoint, out, context={"task_state_store": store}, log=LOG, checkpoint_key="vendorauth_checkpoint",
            options=options,
        )


def first_scan_fails_midway(monkeypatch: pytest.MonkeyPatch, store: DictStore, out: str, **kwargs: Any) -> None:
    with pytest.raises(Exception, match="the task dies here"):
        run(monkeypatch, Api(fail_at=4), store, out, **kwargs)
    assert Checkpoint.from_json(store.data["vendorauth_checkpoint"]).pages == 3  # committed on the failure


def opts(**changes: Any) -> PagingOptions:
    return PagingOptions(**{"pagination": PAGING, "concurrency": 1, **changes})


#: (part, the first scan's arguments, the cleared scan's arguments, what the log says differed)
CHANGES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("connection", {}, {"conn_id": "clazar_b"}, "connection was 'clazar_a', now 'clazar_b'"),
    ("endpoint", {}, {"endpoint": "/v2/items"}, "endpoint was '/items', now '/v2/items'"),
    ("endpoint query", {"endpoint": "/items?status=open"}, {"endpoint": "/items?status=closed"}, "the params changed"),
    ("params", {"options": opts(params={"status": "open"})}, {"options": opts(params={"status": "closed"})},
     "the params changed"),
    ("headers", {"options": opts(headers={"Accept-Version": "1"})}, {"options": opts(headers={"Accept-Version": "2"})},
     "the headers changed"),
    ("page size", {}, {"options": opts(pagination=PageNumberPagination(page_size=20, records_path="items",
                                                                        total_path="total"))}, "the paging changed"),
    ("strategy", {}, {"options": opts(pagination=OffsetPagination(limit=10, records_path="items", total_path="total"))},
     "the paging changed"),
    ("connection's pagination", {"connection_extra": {"pagination": {**PAGING_EXTRA, "page_size": 10}}},
     {"connection_extra": {"pagination": {**PAGING_EXTRA, "page_size": 20}}}, "the paging changed"),
    ("max_records", {"options": opts(max_records=50)}, {"options": opts(max_records=35)}, "the paging changed"),
    ("max_pages", {"options": opts(max_pages=5)}, {"options": opts(max_pages=4)}, "the paging changed"),
]


@pytest.mark.parametrize(("part", "first", "then", "says"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_scan_whose_identity_changed_starts_over_and_holds_only_its_own_records(
    part: str, first: dict[str, Any], then: dict[str, Any], says: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    out, store = str(tmp_path / "x.jsonl"), DictStore()
    first_scan_fails_midway(monkeypatch, store, out, **first)
    alone = DictStore()  # the changed scan run on its own: what the output must hold
    expected_out = str(tmp_path / "alone.jsonl")
    run(monkeypatch, Api(), alone, expected_out, **then)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        summary = run(monkeypatch, Api(), store, out, **then)
    assert lines(Path(out).read_text()) == lines(Path(expected_out).read_text())
    assert summary["records"] == len(lines(Path(expected_out).read_text()))
    assert "it belongs to another scan" in caplog.text and says in caplog.text, caplog.text
    assert "Resuming" not in caplog.text


def test_the_output_path_is_part_of_the_identity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = DictStore()
    first_scan_fails_midway(monkeypatch, store, str(tmp_path / "a.jsonl"))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        run(monkeypatch, Api(), store, str(tmp_path / "b.jsonl"))
    assert "the output changed" in caplog.text
    assert len(lines((tmp_path / "b.jsonl").read_text())) == 60


def test_the_same_scan_still_resumes_whatever_its_concurrency(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, store = str(tmp_path / "x.jsonl"), DictStore()
    first_scan_fails_midway(monkeypatch, store, out, options=opts(params={"status": "open"}))
    with caplog.at_level(logging.INFO, logger=LOG.name):
        run(monkeypatch, Api(), store, out, options=opts(params={"status": "open"}, concurrency=3))
    assert "Resuming /items from its last committed page: 3 pages, 30 records" in caplog.text
    assert [r["n"] for r in lines(Path(out).read_text())] == list(range(60))


def test_a_checkpoint_without_an_identity_is_set_aside(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint of the version before identities describes its file but not its scan: start over."""
    out, store = str(tmp_path / "x.jsonl"), DictStore()
    first_scan_fails_midway(monkeypatch, store, out)
    store.data["vendorauth_checkpoint"].pop("scan")  # what the earlier version stored
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        run(monkeypatch, Api(), store, out)
    assert "records no scan identity (written by an earlier version)" in caplog.text
    assert [r["n"] for r in lines(Path(out).read_text())] == list(range(60))


def test_the_identity_stores_and_logs_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Query parameters, headers and signed output URLs may hold secrets: the checkpoint (the metadata
    database) and the log line keep digests of them."""
    store = DictStore()
    first = opts(params={"api_key": SECRET_PARAM}, headers={"X-Key": SECRET_PARAM})
    first_scan_fails_midway(monkeypatch, store, str(tmp_path / "x.jsonl"), endpoint=f"/items?sig={SECRET_PARAM}", options=first)
    assert SECRET_PARAM not in json.dumps(store.data["vendorauth_checkpoint"]["scan"])
    with caplog.at_level(logging.INFO, logger=LOG.name):
        run(monkeypatch, Api(), store, str(tmp_path / "x.jsonl"), endpoint=f"/items?sig={SECRET_PARAM}x",
            options=opts(params={"api_key": SECRET_PARAM + "x"}, headers={"X-Key": SECRET_PARAM + "x"}))
    (set_aside,) = [r.getMessage() for r in caplog.records if "it belongs to another scan" in r.getMessage()]
    assert "the params changed" in set_aside and "the headers changed" in set_aside
    assert SECRET_PARAM not in set_aside


def test_differences_name_each_changed_part_and_only_those() -> None:
    base: dict[str, Any] = {"connection": "c", "endpoint": "/items", "output": "/data/x.jsonl"}
    same = scan_identity(**base)
    changed: dict[str, Callable[[], dict[str, str]]] = {
        "connection": lambda: scan_identity(**{**base, "connection": "d"}),
        "endpoint": lambda: scan_identity(**{**base, "endpoint": "/other"}),
        "params": lambda: scan_identity(**base, params={"a": 1}),
        "headers": lambda: scan_identity(**base, headers={"A": "1"}),
        "paging": lambda: scan_identity(**base, max_records=5),
        "output": lambda: scan_identity(**{**base, "output": "/data/y.jsonl"}),
    }
    assert differences(same, scan_identity(**base)) == []
    since = {"since": pendulum.datetime(2026, 11, 24, tz="UTC")}  # not JSON: still told apart by value
    assert differences(scan_identity(**base, params=since), scan_identity(**base, params=since)) == []
    (said,) = differences(
        scan_identity(**base, params=since), scan_identity(**base, params={"since": pendulum.datetime(2026, 11, 25)})
    )
    assert "params" in said
    for part, identity in changed.items():
        (said,) = differences(same, identity())
        assert part in said, (part, said)
