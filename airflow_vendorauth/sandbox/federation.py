"""Entra ID's federated identity credentials, as the sandbox checks them (workload identity federation).

A client assertion whose ``iss`` is not the client id is an externally issued token. Entra looks for a
federated identity credential of the app with that issuer (else AADSTS70021, naming issuer, subject and
audience), fetches the issuer's keys (OpenID discovery, then ``jwks_uri``) and verifies the signature
(else AADSTS50013), checks the time range (``nbf``..``exp``, else AADSTS700024), the audience
``api://AzureADTokenExchange`` (else AADSTS70021) and the subject (else AADSTS700213). Only registered
issuers are ever fetched from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from airflow_vendorauth.sandbox.workload_issuer import DEFAULT_SUBJECT, ENTRA_AUDIENCE, issuer_url


@dataclass(frozen=True)
class FederatedCredential:
    """An app's trust in one external identity; ``issuer`` None: this sandbox's own workload issuer."""

    subject: str = DEFAULT_SUBJECT
    audience: str = ENTRA_AUDIENCE
    issuer: str | None = None

    def issuer_for(self, base_url: str) -> str:
        return self.issuer or issuer_url(base_url)


@dataclass(frozen=True)
class FederationRefusal:
    code: int
    description: str


async def _issuer_keys(issuer: str) -> jwt.PyJWKSet:
    # The sandbox's own issuer is the usual one: fetched over the same server, so asynchronously.
    async with httpx.AsyncClient(timeout=5.0, verify=False) as client:
        metadata = (await client.get(f"{issuer}/.well-known/openid-configuration")).json()
        return jwt.PyJWKSet.from_dict((await client.get(metadata["jwks_uri"])).json())


async def check_federated(
    assertion: str, credentials: list[FederatedCredential], base_url: str
) -> FederationRefusal | None:
    """None when the assertion matches a federated identity credential and verifies, else Entra's refusal."""
    try:
        claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        return FederationRefusal(50027, "Invalid JWT token. The client assertion is not a well-formed JWT.")
    aud = claims.get("aud")
    audiences: list[Any] = aud if isinstance(aud, list) else [aud]
    said = (
        f"Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: '{claims.get('sub')}'. "
        f"Assertion Audience: '{','.join(map(str, audiences))}'."
    )
    trusted = [c for c in credentials if c.issuer_for(base_url) == claims.get("iss")]
    if not trusted:
        return FederationRefusal(70021, f"No matching federated identity record found for presented assertion. {said}")
    try:
        keys = await _issuer_keys(str(claims["iss"]))
        key = next(k for k in keys.keys if k.key_id == header.get("kid"))
        jwt.decode(assertion, key.key, algorithms=["RS256", "ES256"], options={"verify_aud": False, "verify_exp": False, "verify_nbf": False})
    except (httpx.HTTPError, ValueError, KeyError, StopIteration, jwt.InvalidTokenError):
        return FederationRefusal(50013, "Assertion failed signature validation.")
    try:
        time_only = {"verify_signature": False, "verify_aud": False, "verify_exp": True, "verify_nbf": True, "require": ["exp"]}
        jwt.decode(assertion, options=time_only)  # type: ignore[arg-type]
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError, jwt.MissingRequiredClaimError):
        return FederationRefusal(700024, "Client assertion is not within its valid time range.")
    with_audience = [c for c in trusted if c.audience in audiences]
    if not with_audience:
        return FederationRefusal(70021, f"No matching federated identity record found for presented assertion. {said}")
    if not any(c.subject == claims.get("sub") for c in with_audience):
        return FederationRefusal(
            700213, f"No matching federated identity record found for presented assertion subject '{claims.get('sub')}'."
        )
    return None
