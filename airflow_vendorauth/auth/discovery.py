"""Finding a token endpoint from an issuer: OpenID Connect discovery, then RFC 8414.

``{issuer}/.well-known/openid-configuration`` first (OpenID Connect Discovery 1.0), then
``/.well-known/oauth-authorization-server`` inserted before the issuer's path (RFC 8414, 3.1). The
document must name the same issuer and an https ``token_endpoint`` (plain http only on loopback). The
answer is kept for the life of the process: metadata changes rarely, and one fetch per process is enough.
A failure says which URLs were tried and what each answered, and is not retried: fix the issuer.
A client that authenticates with a TLS certificate takes the ``mtls_endpoint_aliases`` token endpoint
when the metadata names one (RFC 8705 section 5: servers may take client certificates on other hosts).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from airflow_vendorauth.exceptions import TokenRequestError
from airflow_vendorauth.redact import excerpt
from airflow_vendorauth.urls import is_loopback

_found: dict[str, str] = {}
_guard = threading.Lock()


@dataclass(frozen=True)
class Discovery:
    """Who is asking (for messages) and how to ask (TLS, timeout, a test transport)."""

    vendor: str
    conn_id: str
    timeout: float
    verify: ssl.SSLContext | bool | str
    transport: httpx.BaseTransport | None = None
    #: The client presents a certificate: prefer the metadata's ``mtls_endpoint_aliases``.
    mtls: bool = False


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be, in the order tried."""
    issuer = issuer.rstrip("/")
    parts = urlsplit(issuer)
    rfc8414 = urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + parts.path, "", ""))
    return [f"{issuer}/.well-known/openid-configuration", rfc8414]


def token_endpoint(issuer: str, how: Discovery) -> str:
    """The issuer's token endpoint, discovered once per process."""
    key = f"{issuer} mtls" if how.mtls else issuer
    with _guard:
        if key in _found:
            return _found[key]
    tried: list[str] = []
    with httpx.Client(timeout=how.timeout, verify=how.verify, transport=how.transport) as client:
        for url in metadata_urls(issuer):
            try:
                response = client.get(url, headers={"Accept": "application/json"})
            except httpx.TransportError as exc:
                tried.append(f"{url}: {type(exc).__name__}")
                continue
            if response.status_code != 200:
                tried.append(f"{url}: HTTP {response.status_code}")
                continue
            endpoint = _read(response, issuer, tried, how.mtls)
            if endpoint is not None:
                with _guard:
                    _found[key] = endpoint
                return endpoint
    said = f"no usable metadata for issuer {issuer} ({'; '.join(tried)}). Fix: check Issuer, or fill in Token URL instead"
    raise TokenRequestError(
        f"{how.vendor} connection {how.conn_id!r}: {said}",
        summary=said[0].upper() + said[1:],
        vendor=how.vendor,
        conn_id=how.conn_id,
        error="discovery_failed",
    )


def _read(response: httpx.Response, issuer: str, tried: list[str], mtls: bool = False) -> str | None:
    url = str(response.request.url)
    try:
        document = response.json()
    except ValueError:
        tried.append(f"{url}: not JSON ({excerpt(response.text, 60)!r})")
        return None
    if not isinstance(document, dict) or not isinstance(document.get("token_endpoint"), str):
        tried.append(f"{url}: no token_endpoint")
        return None
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        tried.append(f"{url}: names issuer {document.get('issuer')!r}, not {issuer!r}")
        return None
    endpoint: str = document["token_endpoint"]
    aliases = document.get("mtls_endpoint_aliases")
    if mtls and isinstance(aliases, dict) and isinstance(aliases.get("token_endpoint"), str):
        endpoint = aliases["token_endpoint"]
    parts = urlsplit(endpoint)
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname)):
        tried.append(f"{url}: token_endpoint {endpoint!r} is not https")
        return None
    return endpoint


def forget_discoveries() -> None:
    """Drop the discovered endpoints (tests; an issuer that moved)."""
    with _guard:
        _found.clear()
