"""DPoP (RFC 9449): tokens bound to a key the client holds, proven on every request.

With ``dpop: true`` a credential gets an ES256 key (P-256, ``cryptography``). Every token request and
every API call carries a fresh proof in the ``DPoP`` header: a JWT signed with that key, its public key
in the header (``typ: dpop+jwt``), and the claims ``htm`` (the method), ``htu`` (the URL without query
and fragment), ``iat``, a unique ``jti`` and, on API calls, ``ath`` (base64url SHA-256 of the access
token); the API gets ``Authorization: DPoP <token>``. A proof is made for one request and never sent
twice, so concurrent pages and retries each sign their own. Signing is PyJWT's.

Servers may demand a nonce they chose (section 8 and 9): the token endpoint answers 400 with
``error=use_dpop_nonce`` and a ``DPoP-Nonce`` header, the API 401 with ``WWW-Authenticate: DPoP
error="use_dpop_nonce"``. The latest nonce is kept per origin (:class:`NonceBook`), sent from then on,
and the challenged request is sent once more with a new proof (a token request is built anew, so a
client assertion is not replayed either); a server may rotate its nonce in any answer. The nonce retry
is not an error retry: it costs no attempt of the retry policy.

Where the key lives: with the token. A bound token is useless without its key, so the token cache
stores the key (its private JWK) inside the same encrypted entry as the token (:mod:`.token`). A
process that takes the token from the file or Redis cache signs with that key: the token is shared, as
Bearer tokens are, instead of one token per process (which "the key in the cache key" would mean, the
key being made per process). New tokens are bound to the credential's key in this process.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

#: The header scheme and token type of DPoP-bound tokens.
SCHEME = "DPoP"
ALGORITHM = "ES256"
NONCE_ERROR = "use_dpop_nonce"
_CHALLENGE = re.compile(r'^\s*DPoP\b.*\berror\s*=\s*"?use_dpop_nonce"?', re.I | re.S)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class ProofKey:
    """An ES256 key pair that proves possession. ``repr()`` shows its thumbprint only."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key
        self.public_jwk: dict[str, Any] = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        members = {k: self.public_jwk[k] for k in ("crv", "kty", "x", "y")}  # RFC 7638: sorted, no spaces
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
        #: RFC 7638 thumbprint: the ``cnf.jkt`` a bound token carries.
        self.thumbprint = _b64url(hashlib.sha256(canonical.encode()).digest())

    @classmethod
    def generate(cls) -> ProofKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_jwk(cls, text: str) -> ProofKey:
        """The key a token cache entry carries (its private JWK); ValueError if it is not one."""
        return _from_jwk(text)

    def to_jwk(self) -> str:
        """The private JWK, for the token cache only (stored inside the encrypted entry)."""
        return ECAlgorithm.to_jwk(self._key)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"ProofKey(jkt={self.thumbprint!r})"

    def proof(self, method: str, url: str | httpx.URL, *, nonce: str | None = None, access_token: str | None = None) -> str:
        """A fresh proof for one request (a new ``jti`` every time)."""
        target = httpx.URL(str(url)).copy_with(query=None, fragment=None)
        claims: dict[str, Any] = {"htm": method.upper(), "htu": str(target), "iat": int(time.time()), "jti": str(uuid.uuid4())}
        if nonce:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = _b64url(hashlib.sha256(access_token.encode("ascii")).digest())
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"typ": "dpop+jwt", "jwk": self.public_jwk})


@functools.lru_cache(maxsize=64)
def _from_jwk(text: str) -> ProofKey:
    key = ECAlgorithm.from_jwk(text)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not a private P-256 key")
    return ProofKey(key)


class NonceBook:
    """The latest ``DPoP-Nonce`` each origin sent (RFC 9449 8.2 and 9: the server may change it in any
    answer). Shared by every credential of the process: a nonce belongs to the server, not the key."""

    def __init__(self) -> None:
        self._nonces: dict[tuple[str, str, int | None], str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
        return (url.scheme, url.host, url.port)

    def get(self, url: httpx.URL) -> str | None:
        with self._lock:
            return self._nonces.get(self._origin(url))

    def learn(self, response: httpx.Response) -> None:
        nonce = response.headers.get("DPoP-Nonce")
        if nonce:
            with self._lock:
                self._nonces[self._origin(response.request.url)] = nonce.strip()

    def clear(self) -> None:
        with self._lock:
            self._nonces.clear()


NONCES = NonceBook()


def is_token_nonce_challenge(response: httpx.Response) -> bool:
    """The token endpoint's demand for a nonce: 400 ``use_dpop_nonce`` with a ``DPoP-Nonce`` header."""
    if response.status_code != 400 or "DPoP-Nonce" not in response.headers:
        return False
    try:
        return bool(response.json().get("error") == NONCE_ERROR)
    except (ValueError, AttributeError):
        return False


def is_api_nonce_challenge(response: httpx.Response) -> bool:
    """The API's demand for a nonce: 401, ``WWW-Authenticate: DPoP error="use_dpop_nonce"``, ``DPoP-Nonce``."""
    return (
        response.status_code == 401
        and "DPoP-Nonce" in response.headers
        and any(_CHALLENGE.match(v) for v in response.headers.get_list("WWW-Authenticate"))
    )


def token_request_header(key: ProofKey, url: str, nonces: NonceBook = NONCES) -> dict[str, str]:
    """The ``DPoP`` header of one token request (a fresh proof, with the nonce the server last gave)."""
    return {"DPoP": key.proof("POST", url, nonce=nonces.get(httpx.URL(url)))}


def nonce_demanded(response: httpx.Response, nonces: NonceBook = NONCES) -> bool:
    """Learn the token endpoint's nonce from its answer; True when the answer demands one (send again,
    with a request built anew: a client assertion, like a proof, is good for one request only)."""
    nonces.learn(response)
    return is_token_nonce_challenge(response)


@dataclass
class _Binding:
    """What signed a request's proof, kept on the request (``extensions``) so a redirect can sign anew."""

    access_token: str = field(repr=False)
    key: ProofKey
    sent: bool = False


#: The key of :class:`_Binding` in an ``httpx.Request``'s extensions (httpx carries them into a redirect).
_BINDING = "vendorauth.dpop"


def authorise(request: httpx.Request, access_token: str, key: ProofKey, nonces: NonceBook = NONCES) -> httpx.Request:
    """``Authorization: DPoP <token>`` and a fresh proof of ``key`` for this request (with ``ath``)."""
    request.headers["Authorization"] = f"{SCHEME} {access_token}"
    request.headers["DPoP"] = key.proof(request.method, request.url, nonce=nonces.get(request.url), access_token=access_token)
    request.extensions[_BINDING] = _Binding(access_token, key)
    return request


def before_send(request: httpx.Request, nonces: NonceBook = NONCES) -> None:
    """Right before each request leaves (the client's request hook, same origin only): a request whose
    proof was already sent gets a fresh one. httpx follows a redirect by copying the request's headers
    into the next one, outside the auth flow: the proof would travel with another ``htu`` (a moved path),
    another ``htm`` (303 turns a POST into a GET) or, for the same URL, a ``jti`` already used, all of
    which a server refuses (RFC 9449 4.3, 11.1)."""
    binding = request.extensions.get(_BINDING)
    if not isinstance(binding, _Binding):
        return
    if binding.sent:
        authorise(request, binding.access_token, binding.key, nonces)
        binding = request.extensions[_BINDING]
    binding.sent = True


def forget_binding(request: httpx.Request) -> None:
    """A request leaving the API's origin carries no proof and gets none (its headers are stripped)."""
    request.extensions.pop(_BINDING, None)


def bound_flow(
    request: httpx.Request, access_token: str, key: ProofKey, nonces: NonceBook = NONCES
) -> Generator[httpx.Request, httpx.Response, httpx.Response]:
    """Send an API call with a bound token; if the API demands a (new) nonce, once more with it.
    Returns the last response (the caller decides about a 401 that is not a nonce demand)."""
    response = yield authorise(request, access_token, key, nonces)
    nonces.learn(response)
    if is_api_nonce_challenge(response):
        response = yield authorise(request, access_token, key, nonces)
        nonces.learn(response)
    return response



_keys: dict[str, ProofKey] = {}
_keys_guard = threading.Lock()


def key_for(credential: str) -> ProofKey:
    """The credential's key in this process (made on first use, kept for its later tokens). A token from
    a shared cache brings its own key; this one binds the tokens this process fetches."""
    with _keys_guard:
        if credential not in _keys:
            _keys[credential] = ProofKey.generate()
        return _keys[credential]


def forget_keys_and_nonces() -> None:
    """A fresh process's state: no key made, no nonce learnt (tests)."""
    with _keys_guard:
        _keys.clear()
    NONCES.clear()
