"""An output_path with a password or a signature (issue 31, case 8): the Asset an operator declares (name
and URI), its asset event, XCom and the scan's log lines show it without them; the real path is still
the one written. The names are the lineage module's (``without_secrets`` over ``output_dataset``)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import fsspec
import httpx
import pytest

from airflow_vendorauth.lineage.datasets import without_secrets
from airflow_vendorauth.operators.api import VendorApiOperator, asset_for_output
from airflow_vendorauth.pagination import PageNumberPagination
from tests.unit.fakes import ThrottlingApi, hook_for, set_connection

SECRET = "s1gn4tur3-v4lue"

#: (output_path, what the asset, events, XCom and logs show)
SIGNED: list[tuple[str, str]] = [
    (f"sftp://etl:{SECRET}@files.example/out/jobs.jsonl", "sftp://files.example/out/jobs.jsonl"),
    (f"https://acct.blob.core.windows.net/raw/jobs.jsonl?sv=2024&sp=cw&sig={SECRET}",
     "https://acct.blob.core.windows.net/raw/jobs.jsonl"),
    (f"s3://lake/raw/jobs.jsonl?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}", "s3://lake/raw/jobs.jsonl"),
    (f"abfss://raw:{SECRET}@acct.dfs.core.windows.net/jobs.jsonl", "abfss://raw@acct.dfs.core.windows.net/jobs.jsonl"),
    (f"gs://lake/jobs.jsonl#{SECRET}", "gs://lake/jobs.jsonl"),
    (f"https://files.example:99999/out/jobs.jsonl?sig={SECRET}", "https://files.example:99999/out/jobs.jsonl"),
]


@pytest.mark.parametrize(("path", "shown"), SIGNED)
def test_a_password_or_a_signature_is_left_out_of_the_path_shown(path: str, shown: str) -> None:
    assert without_secrets(path) == shown


@pytest.mark.parametrize(
    "path",
    ["/data/2026-11-24/jobs.jsonl", "/data/odd?name#.jsonl", "file:///data/jobs.jsonl", "s3://lake/raw/jobs.jsonl",
     "s3://aws_default@lake/raw/jobs.jsonl", "sftp://etl@files.example/out/jobs.jsonl"],
)
def test_a_path_without_secrets_is_shown_as_given(path: str) -> None:
    assert without_secrets(path) == path


@pytest.mark.parametrize(("path", "shown"), SIGNED)
def test_the_declared_asset_keeps_no_secret_in_its_name_or_uri(path: str, shown: str) -> None:
    asset = asset_for_output(path)
    assert SECRET not in asset.name and SECRET not in asset.uri
    assert asset.name == f"vendorauth:{shown}"


def test_a_templated_signed_url_keeps_no_secret_either() -> None:
    asset = asset_for_output("https://acct.blob.core.windows.net/raw/{{ ds }}/jobs.jsonl?sig={{ var.value.sas }}")
    assert asset.name == "vendorauth:https://acct.blob.core.windows.net/raw/*/jobs.jsonl" and "sig" not in asset.uri


def test_a_local_asset_is_named_as_before() -> None:
    asset = asset_for_output("/data/{{ ds }}/jobs.jsonl")
    assert (asset.name, asset.uri) == ("vendorauth:/data/*/jobs.jsonl", "file:///data/*/jobs.jsonl")


@pytest.mark.parametrize(
    ("path", "written"),
    [
        (f"memory://etl:{SECRET}@vendorauth-secrets/jobs.jsonl", f"/etl:{SECRET}@vendorauth-secrets/jobs.jsonl"),
        (f"memory://vendorauth-secrets/jobs.jsonl#sig={SECRET}", f"/vendorauth-secrets/jobs.jsonl#sig={SECRET}"),
    ],
    ids=["password", "signature"],
)
def test_a_scan_to_a_url_with_a_secret_writes_there_and_shows_it_nowhere(
    path: str, written: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """fsspec's memory filesystem keeps a URL's user information and fragment in the object's name: the
    scan writes to the real path, while the asset, its event, XCom and the log lines show it without them."""
    set_connection(monkeypatch, "clazar")
    hook = hook_for("clazar", transport=httpx.MockTransport(ThrottlingApi(allowed=100, total=250)))
    monkeypatch.setattr("airflow_vendorauth.hooks.base.hook_for_connection", lambda conn_id: hook)
    operator = VendorApiOperator(
        task_id="jobs", conn_id="clazar", endpoint="/items", output_path=path,
        pagination=PageNumberPagination(page_size=100, records_path="items", total_path="total"),
    )
    events: dict[str, SimpleNamespace] = {}

    class Events:
        def __getitem__(self, asset: Any) -> SimpleNamespace:
            return events.setdefault(asset.uri, SimpleNamespace())

    with caplog.at_level(logging.INFO):  # ours (fsspec's own DEBUG lines name the objects it opens)
        result = operator.execute({"outlet_events": Events()})  # type: ignore[arg-type]
    assert result["path"] == "memory://vendorauth-secrets/jobs.jsonl" and result["records"] == 250
    (event,) = events.values()
    assert event.extra["path"] == "memory://vendorauth-secrets/jobs.jsonl" and event.extra["records"] == 250
    assert fsspec.filesystem("memory").cat(written).count(b"\n") == 250
    assert SECRET not in repr(result) + repr(event.extra) + repr(operator.outlets)
    said = caplog.text + capsys.readouterr().out
    assert "3 pages, 250 records" in said and SECRET not in said


def test_a_failed_scan_names_its_partial_output_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        if request.url.params["page"] == "2":
            return httpx.Response(200, text="<html>a proxy</html>")
        return httpx.Response(200, json={"items": list(range(100)), "total": 300})

    set_connection(monkeypatch, "clazar")
    hook = hook_for("clazar", transport=httpx.MockTransport(api))
    monkeypatch.setattr("airflow_vendorauth.hooks.base.hook_for_connection", lambda conn_id: hook)
    operator = VendorApiOperator(
        task_id="jobs", conn_id="clazar", endpoint="/items", output_path=f"memory://etl:{SECRET}@failing/jobs.jsonl",
        pagination=PageNumberPagination(page_size=100, records_path="items", total_path="total"), concurrency=1,
    )
    with caplog.at_level(logging.INFO), pytest.raises(Exception, match="not JSON") as failed:
        operator.execute({})
    said = caplog.text + capsys.readouterr().out
    assert "stopped after 1 pages: 100 records are in memory://failing/jobs.jsonl.partial" in said
    assert SECRET not in said + str(failed.value)
