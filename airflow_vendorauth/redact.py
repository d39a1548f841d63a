"""Scrub secrets out of text before it can reach a message, a log line or a repr.

Known secrets are replaced by value; anything shaped like a bearer token or a JWT is replaced by
pattern, because a vendor may echo a token we never saw (a proxy's error page, for example).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# A JWT is three base64url segments, the first one a JSON object ("eyJ" is base64 of '{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_BASIC = re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}")
_SECRET_PARAM = re.compile(
    r"(?i)((?:client_secret|password|access_token|refresh_token|user_password|subscription_key)"
    r"[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+"
)

#: Secrets shorter than this are not replaced by value: "a" would shred every message.
MIN_SECRET_LENGTH = 4


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with every known secret and every token-shaped string masked."""
    for secret in sorted((s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _JWT.sub(MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _BASIC.sub(lambda m: m.group(1) + MASK, text)
    return _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, text)


def excerpt(text: str, limit: int = 300) -> str:
    """A short, single-line excerpt of a body, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
