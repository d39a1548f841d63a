"""The rule every URL obeys: absolute http(s), and https unless its parsed host is loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from airflow_vendorauth.exceptions import ConnectionConfigError


def is_loopback(hostname: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost, judged on the parsed hostname, never on a prefix."""
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_url(url: str, name: str, fail: Callable[..., ConnectionConfigError]) -> None:
    """An absolute http(s) URL, https unless its parsed host is loopback."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise fail(name, f"is not a valid URL ({exc})", "write a URL such as https://api.example.com") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise fail(name, f"is not an http(s) URL ({url!r})", "write a URL such as https://api.example.com")
    if parts.scheme == "http" and not is_loopback(hostname):
        raise fail(
            name,
            f"uses plain http for {hostname!r}",
            "use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)",
        )


