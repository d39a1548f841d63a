"""Scrub secrets out of text before it can reach a message, a log line or a repr.

Known secrets are replaced by value; anything shaped like a bearer token or a JWT is replaced by
pattern, because a vendor may echo a token we never saw (a proxy's error page, for example).

The patterns mask credentials, not prose: our own messages say "sends tokens as Bearer and cannot sign
DPoP proofs" or "fill in User password: The user's password", and the word after "Bearer" or "password:"
there is no secret. So:

- after an ``Authorization`` header name (a header line, a dict's repr, JSON), whatever follows the
  scheme is the credential, masked whatever its shape;
- elsewhere, the word after ``Bearer``/``DPoP`` is masked when it looks like a token: RFC 6750's token68
  characters, at least :data:`MIN_TOKEN_LENGTH` of them, and not shaped like a word (letters, lower case
  after the first, words joined by hyphens). JWTs and every opaque token the vendors and the sandbox issue
  (``KAZ-`` and 32 random characters) are longer; a shorter token we know is masked by value. After
  ``Basic``, 8 base64 characters suffice (``a:b`` encodes short), words excepted;
- ``password=x``, ``"password": "x"`` and the like are masked whatever ``x`` is; ``password: x``
  without quotes is masked unless ``x`` is a word that a sentence goes on from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# A JWT is three base64url segments, the first one a JSON object ("eyJ" is base64 of '{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AUTHORIZATION = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|dpop|basic)\s+)[^\s\"',;}]+")
_SCHEME_AND_WORD = re.compile(r"(?i)\b((bearer|dpop|basic)\s+)([A-Za-z0-9._~+/-]+=*)")
#: A word of prose: "and", "Authentication", "token-based", "tokens." (a sentence's end).
_WORD = re.compile(r"[A-Za-z][a-z]*(?:-[a-z]+)*[.]?")
#: The fewest token68 characters after "Bearer"/"DPoP" taken for a token (shorter: a word of prose).
MIN_TOKEN_LENGTH = 16
_MIN_BASIC_LENGTH = 8
_SECRET_PARAM = re.compile(
    r"(?i)((?:client_secret|password|access_token|refresh_token|user_password|subscription_key)"
    r"([\"']?\s*[=:]\s*[\"']?))([^&\s\"',}]+)(?=(\s+[A-Za-z])?)"
)

#: Secrets shorter than this are not replaced by value: "a" would shred every message.
MIN_SECRET_LENGTH = 4


def _token_after_scheme(match: re.Match[str]) -> str:
    word = match.group(3)
    shortest = _MIN_BASIC_LENGTH if match.group(2).lower() == "basic" else MIN_TOKEN_LENGTH
    if len(word) < shortest or _WORD.fullmatch(word):
        return match.group(0)
    return match.group(1) + MASK


def _secret_value(match: re.Match[str]) -> str:
    separator, value, prose_follows = match.group(2), match.group(3), match.group(4)
    bare_colon = separator.strip() == ":"
    if bare_colon and prose_follows and _WORD.fullmatch(value):
        return match.group(0)  # "User password: The user's password": a sentence, not a secret
    return match.group(1) + MASK


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with every known secret and every token-shaped string masked."""
    for secret in sorted((s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _JWT.sub(MASK, text)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + MASK, text)
    text = _SCHEME_AND_WORD.sub(_token_after_scheme, text)
    return _SECRET_PARAM.sub(_secret_value, text)


def excerpt(text: str, limit: int = 300) -> str:
    """A short, single-line excerpt of a body, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
