"""``output_path`` problems (operators/output_path.py) are said with the task and the path before any
request: a relative path (refused: a worker's working directory is nobody's plan), a parent that is a
file, a folder the task's user cannot write, a folder given as the file."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.operators.output_path import OutputPathError, check_output_path
from airflow_vendorauth.pagination import PageNumberPagination
from tests.unit.fakes import ThrottlingApi, hook_for, set_connection


def error_of(path: str) -> str:
    with pytest.raises(OutputPathError) as caught:
        check_output_path(path, "jobs")
    message = str(caught.value)
    assert "Task 'jobs'" in message and repr(path) in message and "Fix:" in message
    return message


def test_a_relative_path_is_refused_not_written_under_the_working_directory() -> None:
    assert "is relative" in error_of("out/jobs.jsonl")
    assert "give an absolute path" in error_of("file://out/jobs.jsonl")


def test_a_parent_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file, not a folder")
    message = error_of(str(tmp_path / "data" / "2026-11-24" / "jobs.jsonl"))
    assert f"{str(tmp_path / 'data')!r} is a file, not a folder" in message


def test_a_folder_given_as_the_file_is_named(tmp_path: Path) -> None:
    assert "is a folder" in error_of(str(tmp_path))


def test_a_folder_the_user_cannot_write_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.access(locked, os.W_OK):  # root writes anywhere: take a folder the kernel refuses even to root
        locked = Path("/proc/1")
        if os.access(locked, os.W_OK):
            pytest.skip("no folder on this machine refuses this user")
    message = error_of(str(locked / "day" / "jobs.jsonl"))
    assert f"may not create files in {str(locked)!r}" in message


def test_valid_paths_pass(tmp_path: Path) -> None:
    check_output_path(str(tmp_path / "new" / "folders" / "jobs.jsonl"), "jobs")
    check_output_path("s3://bucket/jobs.jsonl", "jobs")


def test_the_operator_checks_before_any_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    api = ThrottlingApi(allowed=100, total=10)
    set_connection(monkeypatch, "clazar")
    hook = hook_for("clazar", transport=httpx.MockTransport(api))
    monkeypatch.setattr("airflow_vendorauth.hooks.base.hook_for_connection", lambda conn_id: hook)
    operator = VendorApiOperator(
        task_id="listings", conn_id="clazar", endpoint="/items", output_path=str(tmp_path / "data" / "x.jsonl")
    )
    with pytest.raises(OutputPathError, match="Task 'listings': output_path"):
        operator.execute({})
    assert api.peak == 0


def test_a_path_under_the_home_folder_is_expanded_and_written_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``~/data/x.jsonl`` (issue 32, case 11) is the task user's home, as in a shell: not refused as relative."""
    monkeypatch.setenv("HOME", str(tmp_path))
    set_connection(monkeypatch, "clazar")
    hook = hook_for("clazar", transport=httpx.MockTransport(ThrottlingApi(allowed=100, total=30)))
    monkeypatch.setattr("airflow_vendorauth.hooks.base.hook_for_connection", lambda conn_id: hook)
    operator = VendorApiOperator(
        task_id="items", conn_id="clazar", endpoint="/items", output_path="~/data/x.jsonl",
        pagination=PageNumberPagination(page_size=100, records_path="items", total_path="total"),
    )
    assert operator.outlets[0].uri == f"file://{tmp_path}/data/x.jsonl"
    result = operator.execute({})
    written = tmp_path / "data" / "x.jsonl"
    assert result["path"] == str(written) and written.read_text().count("\n") == 30


def test_a_relative_path_s_message_says_how_to_name_the_home_folder() -> None:
    assert "~/data/records.jsonl" in error_of("data/x.jsonl")
