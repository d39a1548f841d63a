"""How a token request is built, one function per wire format the vendors use.

The vendor modules pick one and fill it in; the provider only ever sends a :class:`TokenRequest`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any


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


def _drop_empty(params: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in params.items() if v is not None}


def client_credentials_form(url: str, client_id: str, client_secret: str, **params: str | None) -> TokenRequest:
    """RFC 6749 client credentials in a form body (Kazi with ``resource``, Keyavi with ``scope``,
    SmartRecruiters as is)."""
    form = _drop_empty(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret, **params}
    )
    return TokenRequest(url=url, form=form, secrets=(client_secret,))


def password_form(
    url: str, client_id: str, client_secret: str, username: str, password: str, **params: str | None
) -> TokenRequest:
    """Resource-owner password grant with the client's credentials in the form (Keyavi user mode)."""
    form = _drop_empty(
        {
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": client_secret,
            "username": username,
            "password": password,
            **params,
        }
    )
    return TokenRequest(url=url, form=form, secrets=(client_secret, password))


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
