"""client_auth federated: the assertion file is read for every token request and sent as RFC 7523 asks,
with no secret; a file that cannot work is refused before any request, naming the file and the fix."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from airflow_vendorauth.auth.federated import AssertionFile, AssertionFileError
from airflow_vendorauth.exceptions import ConnectionConfigError
from tests.unit.fakes import FakeVendor, form_of, hook_for, set_connection

KEY = ec.generate_private_key(ec.SECP256R1())


def projected_token(lifetime: int = 3600, subject: str = "system:serviceaccount:airflow:worker") -> str:
    now = int(time.time())
    claims = {"iss": "https://oidc.example/cluster", "sub": subject, "aud": "api://AzureADTokenExchange",
              "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, KEY, algorithm="ES256")


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "azure-identity-token"
    path.write_text(projected_token())
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(path))
    return path


def federated_kazi(monkeypatch: pytest.MonkeyPatch, **extra: object) -> FakeVendor:
    set_connection(monkeypatch, "kazi", password=None, extra={"client_auth": "federated", **extra})
    return FakeVendor(vendor="kazi")


def test_each_token_request_sends_the_file_as_it_is_then_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, token_file: Path
) -> None:
    fake = federated_kazi(monkeypatch)
    hook = hook_for("kazi", transport=fake.transport())
    hook.get_token()
    token_file.write_text(projected_token(subject="rotated") + "\n")  # the platform rotates the file
    hook.get_token(force_refresh=True)
    first, second = (form_of(r) for r in fake.token_requests)
    assert first["client_assertion_type"] == second["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert jwt.decode(second["client_assertion"], options={"verify_signature": False})["sub"] == "rotated"
    assert first["client_assertion"] != second["client_assertion"]
    assert first["client_id"] == "kazi-client" and "client_secret" not in first
    assert "authorization" not in {k.lower() for k in fake.token_requests[0].headers}


def test_an_expired_file_fails_before_any_request(monkeypatch: pytest.MonkeyPatch, token_file: Path) -> None:
    token_file.write_text(projected_token(lifetime=-30))
    fake = federated_kazi(monkeypatch)
    with pytest.raises(ConnectionConfigError) as error:
        hook_for("kazi", transport=fake.transport()).get_token()
    said = str(error.value)
    assert str(token_file) in said and "expired" in said and "Fix:" in said and "'kazi'" in said
    assert fake.token_requests == []


def test_the_connection_may_name_the_file_instead_of_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)
    elsewhere = tmp_path / "token"
    elsewhere.write_text(projected_token())
    fake = federated_kazi(monkeypatch, assertion_file=str(elsewhere))
    hook_for("kazi", transport=fake.transport()).get_token()
    assert form_of(fake.token_requests[0])["client_assertion"] == elsewhere.read_text()


def test_without_a_file_nor_the_variable_the_connection_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)
    federated_kazi(monkeypatch)
    with pytest.raises(ConnectionConfigError, match=r"Assertion file \(assertion_file\) is missing"):
        hook_for("kazi").settings  # noqa: B018


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "does not exist"), ("", "is empty"), ("   \n", "is empty"), ("hello", "does not hold a JWT")],
)
def test_a_file_that_cannot_work_is_named_with_the_fix(tmp_path: Path, content: str | None, says: str) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AssertionFileError) as error:
        AssertionFile(str(path)).read()
    assert str(path) in str(error.value) and says in str(error.value) and "Fix:" in str(error.value)


def test_the_assertion_never_shows_in_a_repr_or_an_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = projected_token(lifetime=-5)
    path.write_text(token)
    with pytest.raises(AssertionFileError) as error:
        AssertionFile(str(path)).read()
    assert token not in str(error.value) and token not in repr(AssertionFile(str(path)))
