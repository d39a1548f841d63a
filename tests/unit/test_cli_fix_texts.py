"""Fix texts survive Airflow's CLI, which prints a failed Test through Rich markup: ``[redis]`` in
``pip install 'airflow-vendorauth[redis]'`` was read as a tag and vanished (issue 32, item 5)."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys

import pytest

from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

FIX = "pip install 'redis>=5.0'"


def redis_cache_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "oauth2_default") -> None:
    conn = {
        "conn_type": "oauth2",
        "host": "https://api.example/v1",
        "login": "client",
        "password": "secret",
        "extra": {"auth_url": "https://idp.example/oauth2/token", "cache": "redis://127.0.0.1:6379/0"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture
def without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as one where the redis client is not installed (``import redis`` fails); with a Fernet
    key, so a Redis cache would be used."""
    from cryptography.fernet import Fernet

    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())


@pytest.mark.usefixtures("without_redis")
def test_a_redis_cache_without_the_redis_client_fails_test_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    redis_cache_connection(monkeypatch)
    ok, message = OAuth2Hook().test_connection()
    assert not ok
    assert "Token cache (cache)" in message and "redis client is not installed" in message and FIX in message


@pytest.mark.usefixtures("without_redis")
def test_the_cli_prints_the_fix_as_written(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Through Airflow's own ``airflow connections test`` command (its Rich console), in this process."""
    from airflow.cli.commands.connection_command import connections_test
    from airflow.models.connection import Connection

    redis_cache_connection(monkeypatch, "redis_less")
    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    ok, message = Connection.get_connection_from_secrets("redis_less").test_connection()  # what the CLI calls
    assert not ok
    with contextlib.suppress(SystemExit):  # Airflow 3.2+ exits 1 on a failed test; 3.1 only prints
        connections_test(argparse.Namespace(conn_id="redis_less", verbose=False))
    printed = " ".join(capsys.readouterr().out.split())
    assert "Connection failed!" in printed
    assert " ".join(message.split()) in printed  # the whole message, not one bracket eaten
    assert FIX in printed


def test_rich_would_have_eaten_the_old_text() -> None:
    """The check above can fail: Rich, as the CLI prints, drops ``[redis]`` from the former fix."""
    from airflow.cli.simple_table import AirflowConsole

    console = AirflowConsole(record=True, width=200)
    console.print("[bold][red]\nConnection failed![/bold]\npip install 'airflow-vendorauth[redis]'\n")
    assert "pip install 'airflow-vendorauth'" in console.export_text()


def test_a_failed_tests_bracketed_words_survive_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failure's note names ``[core] fernet_key`` (file cache, no Fernet key): the CLI prints it through
    Rich, which read ``[core]`` as a tag and printed "no valid  fernet_key"."""
    from airflow.cli.commands.connection_command import connections_test

    with socket.socket() as probe:  # a port nobody listens on: the token request fails at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = {
        "conn_type": "oauth2",
        "host": "http://127.0.0.1:1/v1",
        "login": "client",
        "password": "secret",
        "extra": {"auth_url": f"http://127.0.0.1:{port}/token", "cache": "file", "max_retries": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NO_FERNET", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    with contextlib.suppress(SystemExit):  # Airflow 3.2+ exits 1 on a failed test; 3.1 only prints
        connections_test(argparse.Namespace(conn_id="no_fernet", verbose=False))
    printed = " ".join(capsys.readouterr().out.split())
    assert "Connection failed!" in printed
    assert "no valid [core] fernet_key to encrypt tokens" in printed, printed


def test_the_escape_is_for_the_cli_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the CLI (the UI, the REST API) the message is returned as written, with no backslash."""
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    conn = {
        "conn_type": "oauth2",
        "host": "http://127.0.0.1:1/v1",
        "login": "client",
        "password": "secret",
        "extra": {"auth_url": "http://127.0.0.1:1/token", "cache": "file", "max_retries": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NO_FERNET_UI", json.dumps(conn))
    ok, message = OAuth2Hook("no_fernet_ui").test_connection()
    assert not ok
    assert "no valid [core] fernet_key" in message and "\\[" not in message
