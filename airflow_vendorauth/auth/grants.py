"""How a token request is built, one function per wire format the vendors use.

The vendor modules pick one and fill it in; the provider only ever sends a :class:`TokenRequest`. A
request is built anew for every attempt (:class:`Attempt`): a client assertion is signed for one request,
and a rotating refresh token changes between two refreshes.

How the client proves itself (:class:`ClientCredentials`) is one of RFC 6749's and RFC 7523's styles:
``client_secret_basic`` (id and secret form-encoded, then Base64, in ``Authorization``),
``client_secret_post`` (both in the form), ``client_secret_json`` (both in a JSON body, as Clazar
wants), ``private_key_jwt`` (a signed client assertion), ``federated`` (an assertion another issuer
signed, read from a file: workload identity federation), ``tls_client_auth`` and
``self_signed_tls_client_auth`` (RFC 8705: the TLS client certificate proves the client, the form carries
its id) or ``none`` (a public client: its id only).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import quote_plus

from airflow_vendorauth.auth.assertions import CLIENT_ASSERTION_TYPE, AssertionSigner

ClientAuthMethod = Literal[
    "client_secret_basic",
    "client_secret_post",
    "client_secret_json",
    "private_key_jwt",
    "federated",
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "none",
]
#: The same names as a tuple, for forms and checks: one list, read off the type.
CLIENT_AUTH_METHODS: tuple[ClientAuthMethod, ...] = get_args(ClientAuthMethod)
#: RFC 8705: the client's TLS certificate authenticates it (the connection's client certificate).
MTLS_CLIENT_AUTH: tuple[ClientAuthMethod, ...] = ("tls_client_auth", "self_signed_tls_client_auth")


@dataclass(frozen=True, repr=False)
class TokenRequest:
    """Everything needed to POST to a token endpoint. ``repr()`` hides the body and headers."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    #: Values that must never be shown (client secret, passwords, the Basic header's payload).
    secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        body = "json" if self.json is not None else "form"
        return f"TokenRequest(url={self.url!r}, body={body}, headers={sorted(self.headers)!r})"


@dataclass(frozen=True)
class Attempt:
    """What one token request is made with, besides the connection: the token endpoint's URL (found by
    discovery, maybe) and the refresh token to spend (the newest one, for ``grant_type=refresh_token``)."""

    token_url: str
    refresh_token: str | None = None


@dataclass(frozen=True, repr=False)
class ClientCredentials:
    """How the client authenticates at the token endpoint. ``repr()`` hides the secret and the key."""

    client_id: str
    method: ClientAuthMethod
    secret: str | None = None
    signer: AssertionSigner | None = None
    #: ``federated``: the externally issued assertion, read anew for every request (the file rotates).
    assertion: Callable[[], str] | None = None

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, method={self.method!r})"


def _drop_empty(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in params.items() if v is not None and v != ""}


#: Grant parameters whose values are secrets.
_SECRET_PARAMS = ("password", "refresh_token", "client_secret", "client_assertion")


def oauth2_request(url: str, grant: Mapping[str, Any], client: ClientCredentials) -> TokenRequest:
    """A token request: the grant's parameters (``grant_type`` first) and the client's authentication."""
    params = _drop_empty(grant)
    headers: dict[str, str] = {}
    secrets: list[str] = []
    if client.method == "client_secret_basic":
        pair = f"{quote_plus(client.client_id)}:{quote_plus(client.secret or '')}"  # RFC 6749 2.3.1
        encoded = base64.b64encode(pair.encode()).decode("ascii")
        headers["Authorization"] = f"Basic {encoded}"
        secrets.append(encoded)
    elif client.method == "private_key_jwt":
        assert client.signer is not None, "private_key_jwt needs a signer"
        params |= {
            "client_id": client.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client.signer.assertion(url),
        }
    elif client.method == "federated":
        assert client.assertion is not None, "federated needs an assertion source"
        params |= {
            "client_id": client.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client.assertion(),
        }
    else:
        params["client_id"] = client.client_id
        if client.method in ("client_secret_post", "client_secret_json"):
            params["client_secret"] = client.secret or ""
    secrets += [params[k] for k in _SECRET_PARAMS if params.get(k)] + ([client.secret] if client.secret else [])
    if client.method == "client_secret_json":
        return TokenRequest(url=url, json=params, secrets=tuple(secrets))
    return TokenRequest(url=url, headers=headers, form=params, secrets=tuple(secrets))


def basic_password_form(url: str, api_key: str, api_secret: str, username: str, password: str) -> TokenRequest:
    """Password grant with ``Authorization: Basic base64(api_key:api_secret)`` (Kayzen)."""
    basic = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode("ascii")
    return TokenRequest(
        url=url,
        headers={"Authorization": f"Basic {basic}"},
        form={"grant_type": "password", "username": username, "password": password},
        secrets=(api_secret, password, basic),
    )


def json_client_credentials(url: str, client_id: str, client_secret: str) -> TokenRequest:
    """Client id and secret in a JSON body, no grant_type (Clazar)."""
    return TokenRequest(
        url=url, json={"client_id": client_id, "client_secret": client_secret}, secrets=(client_secret,)
    )
