"""What an API's answer means: a 2xx response to hand back, or the error it deserves.

Decides which failures are worth another try (and for which methods: a POST that may have reached
the server is not sent twice), and words every error with the vendor's own message, the connection
and a fix, redacted of every secret and token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_vendorauth.auth.httpx_auth import NOT_RESENT
from airflow_vendorauth.auth.replay import ONE_TIME_BODY
from airflow_vendorauth.exceptions import VendorApiError, vendor_error_fields
from airflow_vendorauth.jsonlib import loads
from airflow_vendorauth.redact import excerpt
from airflow_vendorauth.retry import TRANSIENT_STATUSES, parse_retry_after

#: Methods that may be sent twice without harm; POST and PATCH are retried only when the request
#: provably never reached the server (a connect error) or was refused with 429, unless the caller opts in.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_NEVER_REACHED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Caller:
    """Who is calling, for error messages: the vendor, the connection, what to redact, the token's roles."""

    vendor: str
    conn_id: str
    secrets: Callable[[], tuple[str, ...]]
    roles: Callable[[], tuple[str, ...]]

    def error(self, message: str, **kwargs: Any) -> VendorApiError:
        return VendorApiError(
            f"{self.vendor} API {message}", vendor=self.vendor, conn_id=self.conn_id, secrets=self.secrets(), **kwargs
        )


def vendor_message(text: str) -> str:
    """The vendor's own words from an error body, else a short excerpt of it."""
    try:
        body = json.loads(text)
    except ValueError:
        return excerpt(text, 200)
    error, description, _ = vendor_error_fields(body)
    said = ": ".join(p for p in (error, description) if p)
    return excerpt(said, 300) if said else excerpt(text, 200)


def accept(
    caller: Caller,
    outcome: httpx.Response | httpx.TransportError,
    method: str,
    endpoint: str,
    unsafe_ok: bool,
    resendable: bool = True,
) -> httpx.Response:
    """Return a 2xx response; otherwise raise the error it deserves (``retryable`` or not). A call whose
    body cannot be sent again (``resendable`` False: a generator...) is retried only if it never left."""
    if isinstance(outcome, httpx.TransportError):
        return _transport_failure(caller, outcome, method, endpoint, unsafe_ok, resendable)
    if outcome.is_success:
        return outcome
    status = outcome.status_code
    message = (
        f"{method} {outcome.request.url.path} for connection {caller.conn_id!r} answered HTTP {status}: "
        f"{vendor_message(outcome.text)}"
    )
    if status == 401 and NOT_RESENT in outcome.extensions:
        message += f". {outcome.extensions[NOT_RESENT]}"
    elif status == 401:
        roles = ", ".join(caller.roles())
        message += ". A fresh token was refused too: the credential likely lacks the permission for this call" + (
            f" (the token's roles: {roles})" if roles else ""
        )
    elif status == 403:
        message += ". The credential is not allowed this call: ask the vendor for the permission"
    # A 429 is a refusal: the server did nothing, so even a POST may be sent again.
    retryable = status in TRANSIENT_STATUSES and (method in IDEMPOTENT_METHODS or unsafe_ok or status == 429)
    if retryable and not resendable:
        retryable, message = False, f"{message}. Not retried: {ONE_TIME_BODY}"
    raise caller.error(
        message,
        status=status,
        body=outcome.text[:2000],
        retryable=retryable,
        retry_after=parse_retry_after(outcome.headers.get("Retry-After")),
    )


def _transport_failure(
    caller: Caller, exc: httpx.TransportError, method: str, endpoint: str, unsafe_ok: bool, resendable: bool
) -> httpx.Response:
    message = f"{method} {endpoint} for connection {caller.conn_id!r} failed: {type(exc).__name__}: {exc}"
    never_reached = isinstance(exc, _NEVER_REACHED)  # its body was not read either
    retryable = never_reached or (method in IDEMPOTENT_METHODS or unsafe_ok)
    if retryable and not (resendable or never_reached):
        retryable, message = False, f"{message}. Not retried: {ONE_TIME_BODY}"
    raise caller.error(message, status=None, retryable=retryable, timed_out=isinstance(exc, httpx.TimeoutException))


def json_body(caller: Caller, response: httpx.Response, field: str | None = None) -> Any:
    """The JSON body of a 2xx answer (or one field of it), or a VendorApiError that says what came
    instead: a proxy's HTML page at 200 must not reach the user as a JSONDecodeError."""
    where = f"{response.request.method} {response.request.url.path} for connection {caller.conn_id!r}"
    try:
        body = loads(response.content)
    except ValueError:
        content_type = response.headers.get("content-type", "no content type")
        raise caller.error(
            f"{where} answered HTTP {response.status_code} with {content_type} that is not JSON "
            f"({excerpt(response.text, 100)!r})",
            status=response.status_code,
        ) from None
    if field is None:
        return body
    if not isinstance(body, dict) or field not in body:
        raise caller.error(f"{where} answered without {field!r}", status=response.status_code)
    return body[field]
