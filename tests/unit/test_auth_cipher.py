"""TokenCipher (auth/cipher.py): Airflow's Fernet keys encrypt cached tokens; rotation, wrong keys and
broken entries are told apart from good ones."""

from __future__ import annotations

import pendulum
import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.auth.cipher import CacheEntryUnreadable, TokenCipher, cipher_from_keys
from airflow_vendorauth.auth.token import AccessToken

NOW = pendulum.now("UTC")
TOKEN = AccessToken(access_token="tok-value-123", expires_at=NOW.add(hours=1), obtained_at=NOW, roles=("r",))


def test_a_sealed_token_opens_with_its_fields_and_hides_the_value() -> None:
    cipher = TokenCipher([Fernet.generate_key().decode()])
    blob = cipher.seal_token(TOKEN)
    assert b"tok-value-123" not in blob
    opened = cipher.open_token(blob, "file")
    assert (opened.access_token, opened.roles, opened.source) == ("tok-value-123", ("r",), "file")
    assert opened.expires_at == TOKEN.expires_at


def test_rotation_the_first_key_encrypts_and_any_key_decrypts() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = TokenCipher([old]).seal_token(TOKEN)
    rotated = cipher_from_keys(f"{new},{old}")
    assert rotated is not None
    assert rotated.open_token(sealed_with_old, "redis").access_token == TOKEN.access_token
    assert TokenCipher([new]).open_token(rotated.seal_token(TOKEN), "redis").access_token == TOKEN.access_token


@pytest.mark.parametrize("blob", [b"", b"garbage", Fernet(Fernet.generate_key()).encrypt(b"not json")])
def test_unreadable_entries_are_one_clear_error(blob: bytes) -> None:
    with pytest.raises(CacheEntryUnreadable):
        TokenCipher([Fernet.generate_key().decode()]).open_token(blob, "file")


def test_an_entry_from_another_key_is_none_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    blob = TokenCipher([Fernet.generate_key().decode()]).seal_token(TOKEN)
    other = TokenCipher([Fernet.generate_key().decode()])
    assert other.open_token_or_none(blob, "file", "entry-1", logging.getLogger("t")) is None
    assert "entry-1 is unreadable" in caplog.text


@pytest.mark.parametrize("value", [None, "", " , ", "not-a-fernet-key"])
def test_no_usable_key_means_no_cipher(value: str | None) -> None:
    assert cipher_from_keys(value) is None
