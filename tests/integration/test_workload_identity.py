"""Workload identity federation (client_auth federated) through real Airflow against the sandbox's Entra:
the assertion file is re-read for every token request while the platform rewrites it, a stale file fails
before any request with the file and the fix named, and Entra's refusals come back with their AADSTS codes."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest

from airflow_vendorauth.exceptions import ConnectionConfigError, TokenRequestError
from airflow_vendorauth.hooks.kazi import KaziHook
from airflow_vendorauth.hooks.keyavi import KeyaviHook
from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.test_example_dags import DAGS_FOLDER
from tests.integration.triggers import run_trigger

pytestmark = pytest.mark.integration


def write_atomically(path: Path, text: str) -> None:
    """As the kubelet updates a projected volume: the new content appears at once, never half-written."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_connections: dict) -> Path:
    path = tmp_path / "azure-identity-token"
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(path))  # what the AKS webhook injects
    return path


@pytest.fixture
def rotating(token_file: Path, vendor_sandbox: Sandbox) -> Iterator[list[str]]:
    """The platform: a new projected token every 0.3 s, each valid 8 s only (an old content soon fails)."""
    written: list[str] = []
    stop = threading.Event()

    def rotate() -> None:
        while not stop.is_set():
            written.append(vendor_sandbox.workload_token(lifetime=8))
            write_atomically(token_file, written[-1])
            stop.wait(0.3)

    write_atomically(token_file, vendor_sandbox.workload_token(lifetime=8))
    thread = threading.Thread(target=rotate, daemon=True)
    thread.start()
    yield written
    stop.set()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def example_dag(airflow_db: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import sys

    from tests.integration.conftest import dagbag

    os.environ.setdefault("VENDORAUTH_DATA_DIR", str(tmp_path_factory.mktemp("wi-data")))
    sys.path.insert(0, str(DAGS_FOLDER))
    bag = dagbag(dag_folder=str(DAGS_FOLDER / "kazi_workload_identity.py"))
    assert bag.import_errors == {}
    return bag.get_dag("kazi_workload_identity")


def test_a_federated_connection_gets_tokens_while_its_file_is_rewritten(
    example_dag, vendor_sandbox: Sandbox, rotating: list[str], capfd: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    vendor_sandbox.configure(lifetimes={"kazi": 2})  # a token per second: several token requests in one run
    vendor_sandbox.add_fault(vendor="kazi", route="/tagging/*", latency_ms=700)
    run = example_dag.test(logical_date=pendulum.datetime(2026, 11, 24, tz="UTC"))
    assert run.state == "success"
    stats = vendor_sandbox.stats()
    requests = stats["kazi"]["token_requests"]
    assert requests >= 2, stats
    assert stats["kazi"].get("status_400", 0) == stats["kazi"].get("status_401", 0) == 0, stats
    # Each token request sent the file as it was then: as many different assertions as requests.
    assert stats["federation"]["distinct_assertions"] == stats["federation"]["accepted"] == requests
    out = capfd.readouterr()
    logged = out.out + out.err + caplog.text
    assert not any(token in logged for token in rotating), "an assertion reached the log"


def test_a_stale_file_fails_before_any_request_naming_the_file_and_entras_code(
    example_dag, vendor_sandbox: Sandbox, token_file: Path  # type: ignore[no-untyped-def]
) -> None:
    write_atomically(token_file, vendor_sandbox.workload_token(lifetime=-120))  # the platform stopped rotating
    with pytest.raises(ConnectionConfigError) as error:
        KaziHook("kazi_workload_identity").get_token()
    said = str(error.value)
    assert str(token_file) in said and "expired" in said and "AADSTS700024" in said and "Fix:" in said
    ok, message = KaziHook("kazi_workload_identity").test_connection()  # the UI's Test button says the same
    assert not ok and str(token_file) in message and "AADSTS700024" in message
    run = example_dag.test(logical_date=pendulum.datetime(2026, 11, 25, tz="UTC"))
    assert run.state == "failed"
    assert vendor_sandbox.token_requests("kazi") == 0


@pytest.mark.parametrize(
    ("problem", "claims", "code"),
    [
        ("not yet valid (the issuer's clock is ahead)", {"not_before_in": 600}, "AADSTS700024"),
        ("another service account", {"subject": "system:serviceaccount:default:other"}, "AADSTS700213"),
        ("another audience", {"audience": "api://SomethingElse"}, "AADSTS70021"),
    ],
)
def test_entra_refuses_what_its_federated_credential_does_not_match(
    problem: str, claims: dict, code: str, vendor_sandbox: Sandbox, token_file: Path
) -> None:
    assertion = vendor_sandbox.workload_token(**claims)
    write_atomically(token_file, assertion)
    with pytest.raises(TokenRequestError) as error:
        KaziHook("kazi_workload_identity").get_token()
    assert code in str(error.value) and not error.value.retryable
    assert assertion not in str(error.value)
    assert vendor_sandbox.token_requests("kazi") == 1  # never retried


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "does not exist"), ("", "is empty"), ("not a jwt", "does not hold a JWT")],
)
def test_a_missing_empty_or_garbled_file_fails_before_any_request(
    content: str | None, says: str, vendor_sandbox: Sandbox, token_file: Path
) -> None:
    if content is not None:
        token_file.write_text(content)
    with pytest.raises(ConnectionConfigError) as error:
        KaziHook("kazi_workload_identity").get_token()
    assert str(token_file) in str(error.value) and says in str(error.value) and "Fix:" in str(error.value)
    assert vendor_sandbox.token_requests("kazi") == 0


def test_an_unreadable_file_fails_before_any_request(vendor_sandbox: Sandbox, token_file: Path) -> None:
    token_file.mkdir()  # unreadable as a file for anyone, root included (a mode 000 file is not, for root)
    with pytest.raises(ConnectionConfigError, match="cannot be read"):
        KaziHook("kazi_workload_identity").get_token()
    assert vendor_sandbox.token_requests("kazi") == 0


def test_keyavi_takes_the_aks_variables_and_sends_no_secret(
    vendor_sandbox: Sandbox, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    c = vendor_sandbox.credentials
    conn = json.loads(os.environ["AIRFLOW_CONN_KEYAVI_DEFAULT"])
    conn |= {"login": None, "password": None}
    conn["extra"] = {k: v for k, v in conn["extra"].items() if k != "auth_url"} | {"client_auth": "federated"}
    monkeypatch.setenv("AIRFLOW_CONN_KEYAVI_WI", json.dumps(conn))
    monkeypatch.setenv("AZURE_CLIENT_ID", c.keyavi_client_id)
    monkeypatch.setenv("AZURE_TENANT_ID", c.keyavi_tenant)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", f"{vendor_sandbox.url}/login/")
    write_atomically(token_file, vendor_sandbox.workload_token())
    hook = KeyaviHook("keyavi_wi")
    assert hook.settings.client_id == c.keyavi_client_id and hook.settings.client_secret is None
    assert hook.settings.token_url == f"{vendor_sandbox.url}/login/{c.keyavi_tenant}/oauth2/v2.0/token"
    assert hook.request("GET", "/payloads").status_code == 200


def test_the_generic_oauth2_type_sends_a_workload_token_as_its_client_assertion(
    vendor_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
    from airflow_vendorauth.sandbox.connections import oauth2_connection

    path = tmp_path / "token"
    conn = oauth2_connection(vendor_sandbox.url, client_auth="federated", assertion_file=str(path))
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_WORKLOAD", json.dumps(conn))
    token_endpoint = f"{vendor_sandbox.url}/oauth2/token"
    write_atomically(path, vendor_sandbox.workload_token(audience=token_endpoint))
    hook = OAuth2Hook("oauth2_workload")
    assert len(list(hook.paginate("/items"))) == 230
    write_atomically(path, vendor_sandbox.workload_token(audience=token_endpoint, subject="system:serviceaccount:x:y"))
    with pytest.raises(TokenRequestError, match="invalid_client") as error:
        hook.get_token(force_refresh=True)
    assert "system:serviceaccount:x:y" in str(error.value)  # the server's reason, the subject it did not trust
    assert vendor_sandbox.token_requests("oauth2") == 2


def test_the_trigger_reads_the_file_itself_and_carries_only_the_connection_id(
    vendor_sandbox: Sandbox, token_file: Path
) -> None:
    import json

    assertion = vendor_sandbox.workload_token()
    write_atomically(token_file, assertion)
    kwargs, events = run_trigger("kazi_workload_identity", "/tagging/v2/expectations", "pagination.currentPage", 1)
    assert events[0].payload["status"] == "success", events[0].payload
    assert assertion not in json.dumps(kwargs) and str(token_file) not in json.dumps(kwargs)
    assert vendor_sandbox.stats()["federation"]["accepted"] == 1

