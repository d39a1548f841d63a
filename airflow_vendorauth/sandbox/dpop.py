"""The sandbox's DPoP (RFC 9449) checks, for its generic authorization server and API.

A proof is checked as section 4.3 says: a JWT of type ``dpop+jwt``, signed (ES256) by the public key in
its own header, ``htm`` and ``htu`` (without query and fragment) those of the request, ``iat`` within
:data:`IAT_WINDOW_SECONDS`, a ``jti`` never seen before (a reuse is refused and counted as
``dpop_proof_reuse``), on the API ``ath`` = the token's hash and the key the token is bound to
(``cnf.jkt``). Both the token endpoint and the API demand a nonce they chose (sections 8 and 9) and
rotate it every :attr:`DPoPVerifier.rotate_every` accepted proofs; the one before stays valid, as a
server under concurrent requests must allow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt

IAT_WINDOW_SECONDS = 60


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an EC public JWK."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True)
class Refusal:
    """Why a proof was refused: ``use_dpop_nonce`` (with the nonce to use) or ``invalid_dpop_proof``."""

    error: str
    description: str
    nonce: str | None = None


@dataclass
class _Nonces:
    current: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    previous: str | None = None
    accepted: int = 0


@dataclass
class DPoPVerifier:
    """Checks proofs; keeps the seen ``jti`` values and one nonce per place (``token``, ``api``)."""

    require_nonce: bool = True
    rotate_every: int = 5
    counters: Counter[str] = field(default_factory=Counter)
    _seen: set[str] = field(default_factory=set)
    _nonces: dict[str, _Nonces] = field(default_factory=lambda: {"token": _Nonces(), "api": _Nonces()})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def nonce(self, where: str) -> str:
        with self._lock:
            return self._nonces[where].current

    def check(
        self, proof: str | None, method: str, url: str, *, where: str, access_token: str | None = None,
        bound_to: str | None = None,
    ) -> tuple[str | None, Refusal | None]:
        """(the proof key's thumbprint, None) for a good proof, else (None, the refusal)."""
        if not proof:
            return None, Refusal("invalid_dpop_proof", "A DPoP proof is required")
        try:
            header = jwt.get_unverified_header(proof)
            if header.get("typ") != "dpop+jwt" or header.get("alg") != "ES256" or "jwk" not in header:
                return None, Refusal("invalid_dpop_proof", "The proof must be an ES256 dpop+jwt with its jwk")
            if any(k in header["jwk"] for k in ("d", "p", "q")):
                return None, Refusal("invalid_dpop_proof", "The proof's jwk must not hold a private key")
            key = jwt.PyJWK(header["jwk"], algorithm="ES256")
            claims = jwt.decode(proof, key, algorithms=["ES256"], options={"verify_aud": False, "verify_iat": False})
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            return None, Refusal("invalid_dpop_proof", f"The proof's signature does not verify ({type(exc).__name__})")
        problem = self._claims_problem(claims, method, url, access_token)
        if problem:
            return None, Refusal("invalid_dpop_proof", problem)
        jkt = thumbprint(header["jwk"])
        if bound_to is not None and jkt != bound_to:
            return None, Refusal("invalid_dpop_proof", "The proof's key is not the one the token is bound to")
        with self._lock:
            self.counters["dpop_proofs"] += 1
            if claims["jti"] in self._seen:
                self.counters["dpop_proof_reuse"] += 1
                return None, Refusal("invalid_dpop_proof", "The proof's jti was used before (replay)")
            self._seen.add(claims["jti"])
            nonces = self._nonces[where]
            nonce = claims.get("nonce")
            if self.require_nonce and (not nonce or nonce not in (nonces.current, nonces.previous)):
                self.counters[f"dpop_nonce_challenges_{where}"] += 1
                return None, Refusal("use_dpop_nonce", f"The {where} requires a DPoP nonce", nonces.current)
            nonces.accepted += 1
            if self.rotate_every and nonces.accepted % self.rotate_every == 0:
                nonces.previous, nonces.current = nonces.current, secrets.token_urlsafe(16)
                self.counters[f"dpop_nonce_rotations_{where}"] += 1
        return jkt, None

    @staticmethod
    def _claims_problem(claims: dict[str, Any], method: str, url: str, access_token: str | None) -> str | None:
        if claims.get("htm") != method:
            return f"htm {claims.get('htm')!r} is not the request's method {method}"
        if claims.get("htu") != url:
            return f"htu {claims.get('htu')!r} is not the request's URL {url} (without query and fragment)"
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or abs(time.time() - iat) > IAT_WINDOW_SECONDS:
            return "iat is missing or not within a minute of now"
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            return "jti is missing"
        if access_token is not None:
            ath = _b64url(hashlib.sha256(access_token.encode()).digest())
            if claims.get("ath") != ath:
                return "ath is not the hash of the access token"
        return None

    def reset(self) -> None:
        with self._lock:
            self.counters.clear()
            self._seen.clear()
            self._nonces = {"token": _Nonces(), "api": _Nonces()}
            self.require_nonce, self.rotate_every = True, 5
