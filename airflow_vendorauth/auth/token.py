"""AccessToken and the one parser that turns any vendor's token answer into it.

The vendors disagree on types: Kazi sends ``"expires_in": "3599"`` (a string) and ``expires_on`` as a
string of epoch seconds, Kayzen ``"1799"``, Keyavi and Clazar integers, SmartRecruiters says
``"bearer"`` in lower case. One normaliser handles all of them, so the rest of the code only ever sees
a timezone-aware ``expires_at`` and ``token_type`` ``"Bearer"`` (or ``"DPoP"`` for a DPoP-bound token).

Refresh leeway: a token is refreshed ahead of expiry by 10 % of its lifetime, at least 30 s and at
most 5 min, never more than half the lifetime (so a 10 s test token is still used for 5 s), minus a
little random jitter (up to 10 % of the leeway) so workers that obtained the same token do not all
refresh in the same second. A fixed 5 minutes (MSAL) would throw away a sixth of Kayzen's 30-minute
token; a fixed 30 s (httpx-auth) lets a slow call leave with a token about to expire.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pendulum

from airflow_vendorauth.exceptions import InvalidTokenResponseError

LEEWAY_FRACTION = 0.10
LEEWAY_FLOOR_SECONDS = 30.0
LEEWAY_CAP_SECONDS = 300.0
JITTER_FRACTION = 0.10
#: Lifetime assumed when a vendor states none at all (no expires_in, expires_on nor JWT exp).
DEFAULT_LIFETIME_SECONDS = 3600
#: A lifetime above this is nonsensical for a bearer token and is refused rather than trusted.
MAX_LIFETIME_SECONDS = 31 * 24 * 3600


def leeway_for(lifetime_seconds: float) -> float:
    """How long before expiry a token of this lifetime is refreshed (see the module docstring)."""
    leeway = min(max(lifetime_seconds * LEEWAY_FRACTION, LEEWAY_FLOOR_SECONDS), LEEWAY_CAP_SECONDS)
    return min(leeway, lifetime_seconds / 2)


@dataclass(frozen=True, repr=False)
class AccessToken:
    """A bearer token and what we know about it. ``repr()`` and ``str()`` never show the token."""

    access_token: str
    expires_at: pendulum.DateTime
    obtained_at: pendulum.DateTime
    token_type: str = "Bearer"
    scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    #: Where this process got the token from: "fetched", "memory", "file" or "redis".
    source: str = "fetched"
    refresh_at: pendulum.DateTime = field(default=None)  # type: ignore[assignment]
    #: The refresh token that came with this token (rotating servers send a new one each time). Kept
    #: out of ``to_json``: it is stored, encrypted, on its own (see TokenProvider), never with the token.
    refresh_token: str | None = field(default=None, compare=False)
    #: For a DPoP-bound token (``token_type == "DPoP"``): the private JWK of the key it is bound to. It
    #: travels with the token, inside the same encrypted cache entry (see :mod:`.dpop`); never shown.
    proof_key: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.refresh_at is None:
            lifetime = (self.expires_at - self.obtained_at).total_seconds()
            leeway = leeway_for(lifetime)
            leeway += random.uniform(0, leeway * JITTER_FRACTION)
            object.__setattr__(self, "refresh_at", self.expires_at.subtract(seconds=leeway))

    @property
    def lifetime_seconds(self) -> int:
        return int((self.expires_at - self.obtained_at).total_seconds())

    def is_fresh(self, now: pendulum.DateTime | None = None) -> bool:
        """True while the token may still leave on a call: before its refresh point.

        Checked on every call, so it compares epoch seconds (``time.time()``) rather than datetimes.
        """
        return (now.timestamp() if now is not None else time.time()) < self.refresh_at.timestamp()

    def seconds_left(self, now: pendulum.DateTime | None = None) -> int:
        return int((self.expires_at - (now or pendulum.now("UTC"))).total_seconds())

    def to_json(self) -> str:
        """Serialise for a shared cache (the caller encrypts it)."""
        return json.dumps(
            {
                "access_token": self.access_token,
                "expires_at": self.expires_at.isoformat(),
                "obtained_at": self.obtained_at.isoformat(),
                "token_type": self.token_type,
                "scopes": list(self.scopes),
                "roles": list(self.roles),
                **({"proof_key": self.proof_key} if self.proof_key else {}),
            }
        )

    @classmethod
    def from_json(cls, text: str, source: str) -> AccessToken:
        data = json.loads(text)
        expires_at = pendulum.parse(data["expires_at"])
        obtained_at = pendulum.parse(data["obtained_at"])
        if not isinstance(expires_at, pendulum.DateTime) or not isinstance(obtained_at, pendulum.DateTime):
            raise ValueError("cached token has malformed timestamps")
        return cls(
            access_token=str(data["access_token"]),
            expires_at=expires_at,
            obtained_at=obtained_at,
            token_type=str(data.get("token_type", "Bearer")),
            scopes=tuple(data.get("scopes", ())),
            roles=tuple(data.get("roles", ())),
            source=source,
            proof_key=data.get("proof_key"),
        )

    def __repr__(self) -> str:
        return (
            f"AccessToken(token_type={self.token_type!r}, access_token='***', "
            f"expires_at={self.expires_at.isoformat()!r}, scopes={self.scopes!r}, roles={self.roles!r}, "
            f"source={self.source!r})"
        )

    __str__ = __repr__


def decode_jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, unverified (we are its bearer, not its audience), or None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not token.startswith("eyJ"):
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _as_seconds(value: Any) -> float | None:
    """3599, "3599", "3599.0" -> 3599.0; anything else -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _lifetime(
    body: dict[str, Any], claims: dict[str, Any] | None, now: pendulum.DateTime, bad: Any
) -> float:
    """Seconds the token lives: ``expires_in``, else ``expires_on``, else the JWT's ``exp``, else the default."""
    if "expires_in" in body:
        lifetime = _as_seconds(body["expires_in"])
        if lifetime is None:
            raise bad(f"expires_in is not a number ({type(body['expires_in']).__name__})")
        return lifetime
    if "expires_on" in body:
        expires_on = _as_seconds(body["expires_on"])
        if expires_on is None:
            raise bad("expires_on is not a number of epoch seconds")
        return expires_on - now.timestamp()
    if claims is not None and "exp" in claims:
        exp = _as_seconds(claims["exp"])
        if exp is None:
            raise bad("the JWT's exp claim is not a number")
        return exp - now.timestamp()
    return float(DEFAULT_LIFETIME_SECONDS)


def parse_token_response(
    body: Any,
    *,
    vendor: str,
    conn_id: str,
    expect_jwt: bool = False,
    now: pendulum.DateTime | None = None,
) -> AccessToken:
    """Turn a decoded token answer into an AccessToken, or explain clearly why it is unusable.

    Expiry comes from ``expires_in`` (int or string), else ``expires_on`` (epoch seconds), else the
    JWT's ``exp``, else :data:`DEFAULT_LIFETIME_SECONDS`.
    """
    now = now or pendulum.now("UTC")

    def bad(problem: str) -> InvalidTokenResponseError:
        return InvalidTokenResponseError(
            f"{vendor} token endpoint for connection {conn_id!r} answered 2xx but {problem}; "
            "check the token_url extra points at the vendor's token endpoint",
            vendor=vendor,
            conn_id=conn_id,
        )

    if not isinstance(body, dict):
        raise bad(f"the body is a JSON {type(body).__name__}, not an object")
    token = body.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise bad("the body has no access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() not in ("bearer", "dpop"):
        raise bad(f"token_type is {token_type!r}, not a bearer (nor a DPoP-bound) token")

    claims = decode_jwt_claims(token)
    if expect_jwt and claims is None:
        raise bad("the access_token is not a decodable JWT although this vendor issues JWTs")

    lifetime = _lifetime(body, claims, now, bad)
    if lifetime <= 0:
        raise bad(f"the token is already expired (lifetime {lifetime:.0f} s)")
    if lifetime > MAX_LIFETIME_SECONDS:
        raise bad(f"the lifetime {lifetime:.0f} s is beyond {MAX_LIFETIME_SECONDS} s and cannot be trusted")

    scopes = _words(body.get("scope"))
    roles: tuple[str, ...] = ()
    if claims is not None:
        roles = _words(claims.get("roles"))
        scopes = scopes or _words(claims.get("scp"))
    refresh = body.get("refresh_token")
    return AccessToken(
        access_token=token,
        expires_at=now.add(seconds=lifetime),
        obtained_at=now,
        token_type="DPoP" if token_type.lower() == "dpop" else "Bearer",
        scopes=scopes,
        roles=roles,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )
