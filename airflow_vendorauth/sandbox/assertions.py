"""Client assertions checked the way Entra ID and RFC 7523 servers check them, for the sandbox.

The sandbox is an oracle: a client that passes here must pass there. So an assertion is refused when
its certificate is not registered (found by ``x5t#S256``, ``x5t`` or ``kid``), its signature does not
verify, its ``aud`` is not the token endpoint's URL, ``iss``/``sub`` are not the client id, it is
outside ``nbf``..``exp`` (or lives longer than an hour), or its ``jti`` was used before.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

ALGORITHMS = ("RS256", "PS256", "ES256")
MAX_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class Refusal:
    """Why an assertion was refused: ``problem`` is one of unknown_key, signature, audience, issuer,
    time, replayed, malformed; ``detail`` says it in words."""

    problem: str
    detail: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class RegisteredCertificate:
    pem: str
    key_id: str | None = None

    def matches(self, header: dict[str, Any]) -> bool:
        cert = x509.load_pem_x509_certificate(self.pem.encode())
        ids = {
            ("x5t#S256", _b64url(cert.fingerprint(hashes.SHA256()))),
            ("x5t", _b64url(cert.fingerprint(hashes.SHA1()))),
            ("kid", self.key_id),
        }
        # thumbprints with or without base64 padding, as Entra takes them (MSAL pads, RFC 7515 does not)
        named = [(k, str(header[k]).rstrip("=") if k != "kid" else header[k]) for k in ("x5t#S256", "x5t", "kid") if header.get(k)]
        return not named or any(pair in ids for pair in named)

    def public_key(self) -> Any:
        return x509.load_pem_x509_certificate(self.pem.encode()).public_key()


class AssertionVerifier:
    """Verifies client assertions and remembers every ``jti`` until its assertion expires."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()

    def verify(
        self, assertion: str, *, client_id: str, audience: str, certificates: list[RegisteredCertificate]
    ) -> Refusal | None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.DecodeError as exc:
            return Refusal("malformed", f"the client assertion is not a JWT ({exc})")
        if header.get("alg") not in ALGORITHMS:
            return Refusal("signature", f"algorithm {header.get('alg')!r} is not accepted ({', '.join(ALGORITHMS)})")
        candidates = [c for c in certificates if c.matches(header)]
        if not candidates:
            return Refusal("unknown_key", "the certificate that signed the client assertion is not registered")
        claims = None
        for certificate in candidates:
            try:
                claims = jwt.decode(
                    assertion,
                    certificate.public_key(),
                    algorithms=[header["alg"]],
                    audience=audience,
                    options={"require": ["exp", "iss", "sub", "aud", "jti"]},
                    leeway=5,
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAudienceError:
                return Refusal("audience", f"the assertion's aud is not the token endpoint {audience}")
            except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
                return Refusal("time", "the client assertion is not within its valid time range")
            except jwt.InvalidTokenError as exc:
                return Refusal("malformed", f"the client assertion is invalid ({exc})")
        if claims is None:
            return Refusal("signature", "the client assertion's signature does not verify with the registered key")
        if claims["iss"] != client_id or claims["sub"] != client_id:
            return Refusal("issuer", "the client assertion's iss and sub must both be the client_id")
        if claims["exp"] - claims.get("iat", claims["exp"]) > MAX_LIFETIME_SECONDS:
            return Refusal("time", "the client assertion lives longer than an hour")
        return self._first_use(str(claims["jti"]), float(claims["exp"]))

    def _first_use(self, jti: str, expires: float) -> Refusal | None:
        now = time.time()
        with self._lock:
            for old in [j for j, until in self._seen.items() if until < now - 60]:
                del self._seen[old]
            if jti in self._seen:
                return Refusal("replayed", f"the client assertion's jti {jti!r} was already used")
            self._seen[jti] = expires
        return None
