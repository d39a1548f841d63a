"""Encryption of tokens at rest in the shared caches, with Airflow's Fernet key(s).

Airflow's ``[core] fernet_key`` may hold several comma-separated keys (rotation): the first encrypts,
any decrypts, as Airflow itself does. Without a key there is no cipher, and the shared caches store
nothing (a token is never written in clear): see :func:`cipher_from_keys`.
"""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.warn_once import warn_once


class CacheEntryUnreadable(Exception):
    """A cached entry could not be decrypted or parsed (corrupt, or written with another key)."""


class TokenCipher:
    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode())

    def open_token(self, blob: bytes, source: str) -> AccessToken:
        """A cached entry back into a token; CacheEntryUnreadable if it is corrupt or from another key."""
        try:
            return AccessToken.from_json(self.decrypt(blob), source=source)
        except (ValueError, KeyError, TypeError) as exc:
            raise CacheEntryUnreadable(type(exc).__name__) from None

    def open_token_or_none(
        self, blob: bytes, source: str, where: str, log: logging.Logger | None
    ) -> AccessToken | None:
        """:meth:`open_token`, or None and a warning (once per entry) when the entry is unreadable: a
        broken entry costs a token request, never a task; the next store replaces it."""
        try:
            return self.open_token(blob, source)
        except CacheEntryUnreadable as exc:
            warn_once(
                log,
                f"unreadable:{where}",
                "Token cache entry %s is unreadable (%s: corrupt, or written with another Fernet key); replacing it",
                where,
                str(exc),
            )
            return None

    def seal_token(self, token: AccessToken) -> bytes:
        return self.encrypt(token.to_json())

    def decrypt(self, blob: bytes) -> str:
        try:
            return self._fernet.decrypt(blob).decode()
        except (InvalidToken, ValueError, UnicodeDecodeError) as exc:
            raise CacheEntryUnreadable(type(exc).__name__) from None


def cipher_from_keys(fernet_key: str | None) -> TokenCipher | None:
    """A cipher for Airflow's ``[core] fernet_key`` value, or None when it is empty or invalid."""
    keys = [k.strip() for k in (fernet_key or "").split(",") if k.strip()]
    if not keys:
        return None
    try:
        return TokenCipher(keys)
    except ValueError:
        return None
