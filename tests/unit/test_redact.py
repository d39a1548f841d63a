"""Redaction masks credentials, not prose: the word after "Bearer" in our own messages survives, tokens
of every shape the vendors and the sandbox issue do not (issue 32, item 8)."""

from __future__ import annotations

import secrets

import pytest

from airflow_vendorauth.redact import MASK, redact

SANDBOX_STYLE = f"KAZ-{secrets.token_urlsafe(24)}"  # what sandbox/state.py issue() hands out


@pytest.mark.parametrize(
    "prose",
    [
        "is true, but the HTTP bridge (vendor_auth) sends tokens as Bearer and cannot sign DPoP proofs",
        "A DPoP-bound token goes with the DPoP scheme, a bearer token with Bearer",
        "SmartRecruiters answers token_type bearer, in lower case",
        "the API wants Bearer authentication for this call",
        "Bearer tokens. DPoP proofs. Basic authentication failed",
        "a Bearer token-based scheme",
        "the Bearer authorization-header-based scheme",  # long, but words
        "tokens go as Bearer per RFC6750, as DPoP per RFC9449",  # not words, but short
        'WWW-Authenticate: Bearer error="invalid_token"',
        "Fix: fill in User password: The user's password (password grant only).",
    ],
)
def test_prose_survives(prose: str) -> None:
    assert redact(prose) == prose


@pytest.mark.parametrize(
    ("text", "token"),
    [
        (f"Bearer {SANDBOX_STYLE} was refused", SANDBOX_STYLE),
        (f"bearer {SANDBOX_STYLE}", SANDBOX_STYLE),
        ("retry with Bearer Zm9vYmFyYmF6cXV4MTIzNDU2 later", "Zm9vYmFyYmF6cXV4MTIzNDU2"),
        ("DPoP a1b2c3d4e5f6a7b8c9d0e1f2", "a1b2c3d4e5f6a7b8c9d0e1f2"),
        ("sent Bearer abcdefghijklmnopqrstuvwx/yz+0== once", "abcdefghijklmnopqrstuvwx/yz+0=="),
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("Authorization: Bearer at-1", "at-1"),  # after the header name, any shape is the credential
        ("{'Authorization': 'Bearer at-1', 'Accept': 'application/json'}", "at-1"),
        ('{"authorization": "DPoP opaque-7"}', "opaque-7"),
        ("Authorization: Bearer and", "and"),  # even a word, in a header
        ("Basic YWJjOmRlZmdoaWpr", "YWJjOmRlZmdoaWpr"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl in a message", "eyJzdWIiOiIxIn0"),
        ("client_secret=hunter22&grant_type=client_credentials", "hunter22"),
        ('{"password": "hunter22"}', "hunter22"),
        ('{"password": "Summer"}', "Summer"),
        ("password=Summer", "Summer"),
        ("the password: Summer", "Summer"),
        ("refresh_token: RT-0", "RT-0"),
    ],
)
def test_tokens_are_masked(text: str, token: str) -> None:
    shown = redact(text)
    assert token not in shown and MASK in shown


def test_a_known_short_token_is_masked_by_value_anywhere() -> None:
    assert redact("sent Bearer at-1 and at-1 again", ["at-1"]) == f"sent Bearer {MASK} and {MASK} again"


def test_the_bridges_dpop_refusal_reads_as_written() -> None:
    from airflow_vendorauth.exceptions import ConnectionConfigError

    error = ConnectionConfigError(
        "c", "dpop", "is true, but the HTTP bridge (vendor_auth) sends tokens as Bearer and cannot sign DPoP proofs", "x"
    )
    assert "sends tokens as Bearer and cannot sign DPoP proofs" in str(error)
    assert "sends tokens as Bearer and cannot sign DPoP proofs" in error.summary
