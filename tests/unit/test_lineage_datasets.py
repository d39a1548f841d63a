"""OpenLineage dataset names (lineage/datasets.py): the naming conventions for files and object stores,
and an API endpoint named by its origin and path, never by its query or credentials."""

from __future__ import annotations

import os

import pytest

from airflow_vendorauth.lineage.datasets import DatasetName, api_dataset, output_dataset


@pytest.mark.parametrize(
    ("path", "namespace", "name"),
    [
        ("/data/2026-11-24/jobs.jsonl", "file", "/data/2026-11-24/jobs.jsonl"),
        ("file:///data/jobs.jsonl", "file", "/data/jobs.jsonl"),
        ("file://localhost/data/jobs.jsonl", "file", "/data/jobs.jsonl"),
        ("file://nas01/exports/jobs.jsonl", "file://nas01", "/exports/jobs.jsonl"),
        ("s3://lake/raw/jobs.jsonl", "s3://lake", "raw/jobs.jsonl"),
        ("s3a://lake/raw/jobs.jsonl", "s3://lake", "raw/jobs.jsonl"),
        # ObjectStoragePath's connection id sits where user information goes: it names no data source
        ("s3://aws_default@lake/raw/jobs.jsonl", "s3://lake", "raw/jobs.jsonl"),
        ("gs://lake/raw/jobs.jsonl", "gs://lake", "raw/jobs.jsonl"),
        ("gcs://lake/raw/jobs.jsonl", "gs://lake", "raw/jobs.jsonl"),
        (
            "abfss://raw@acct.dfs.core.windows.net/jobs/jobs.jsonl",
            "abfss://raw@acct.dfs.core.windows.net",
            "jobs/jobs.jsonl",
        ),
        ("hdfs://namenode:8020/raw/jobs.jsonl", "hdfs://namenode:8020", "/raw/jobs.jsonl"),
        ("sftp://user:pw@files.example/out/jobs.jsonl", "sftp://files.example", "/out/jobs.jsonl"),
    ],
)
def test_outputs_follow_openlineage_naming_for_files_and_object_stores(path: str, namespace: str, name: str) -> None:
    assert output_dataset(path) == DatasetName(namespace, name)


def test_a_relative_local_path_is_named_by_its_absolute_path(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    assert output_dataset("out/jobs.jsonl") == DatasetName("file", os.path.join(str(tmp_path), "out/jobs.jsonl"))


@pytest.mark.parametrize(
    ("base_url", "endpoint", "namespace", "name"),
    [
        ("https://api.smartrecruiters.com", "/jobs", "https://api.smartrecruiters.com", "/jobs"),
        ("https://api.smartrecruiters.com/", "jobs", "https://api.smartrecruiters.com", "/jobs"),
        # the connection's host path is part of the name: it is where the hooks send the request
        ("http://127.0.0.1:8911/kazi", "/tagging/v2/expectations", "http://127.0.0.1:8911", "/kazi/tagging/v2/expectations"),
        ("https://keyavi.example/api", "/payloads", "https://keyavi.example", "/api/payloads"),
        # default ports, case of scheme and host: one data source, one namespace
        ("HTTPS://API.Example.COM:443/v1", "/items", "https://api.example.com", "/v1/items"),
        ("https://[::1]:8443", "/items", "https://[::1]:8443", "/items"),
        # an absolute endpoint (a next link) stands alone, as the hooks resolve it
        ("https://api.example.com/v1", "https://other.example.com/v2/items", "https://other.example.com", "/v2/items"),
    ],
)
def test_an_api_is_named_by_its_origin_and_path(base_url: str, endpoint: str, namespace: str, name: str) -> None:
    assert api_dataset(base_url, endpoint) == DatasetName(namespace, name)


def test_query_values_and_credentials_never_enter_an_api_dataset_name() -> None:
    named = api_dataset(
        "https://client:s3cr3t@api.example.com/v1", "/reports?api_key=k3y&updated_after=2026-11-24#frag"
    )
    assert named == DatasetName("https://api.example.com", "/v1/reports")
    for secret in ("s3cr3t", "client", "k3y", "2026-11-24", "frag"):
        assert secret not in named.namespace + named.name


def test_a_name_reads_back_as_one_uri() -> None:
    assert output_dataset("/data/jobs.jsonl").uri == "file:///data/jobs.jsonl"
    assert output_dataset("s3://lake/raw/jobs.jsonl").uri == "s3://lake/raw/jobs.jsonl"
    assert api_dataset("https://api.example.com", "/jobs").uri == "https://api.example.com/jobs"
