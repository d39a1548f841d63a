"""The provider's exception family.

Every failure a user can meet is one of these. Each message names the connection, the field or the
vendor's answer, and the fix, and passes through :func:`redact` so no secret ever reaches a log line
or a traceback, whatever the vendor echoed back.
"""

from __future__ import annotations

from typing import Any

from airflow_vendorauth.redact import redact


def vendor_error_fields(body: Any) -> tuple[str | None, str | None, list[str]]:
    """``error``, a description and Microsoft's AADSTS codes from any vendor's error body.

    The shapes met: OAuth ``{error, error_description}`` (+ ``error_codes`` from Microsoft), APIM and
    Kayzen ``{message}``, SmartRecruiters ``{message, errors: [...]}``, Clazar (Django REST) ``{detail}``.
    """
    if not isinstance(body, dict):
        return None, None, []
    error = body.get("error")
    description = body.get("error_description") or body.get("message") or body.get("detail")
    if isinstance(body.get("errors"), list) and body["errors"]:
        listed = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body["errors"])
        description = f"{description} ({listed})" if description else listed
    codes = [f"AADSTS{c}" for c in body.get("error_codes", []) if isinstance(c, int)]
    return (str(error) if error is not None else None), (str(description) if description else None), codes


class VendorAuthError(Exception):
    """Base of every error raised by airflow-vendorauth."""

    #: Whether trying the same thing again may succeed (network blips, 429, 5xx).
    retryable: bool = False

    def __init__(self, message: str, *, secrets: tuple[str, ...] = (), summary: str | None = None) -> None:
        super().__init__(redact(message, secrets))
        #: The message in the connection form's words, without the connection id: what the UI's Test
        #: shows (Airflow tests a temporary copy of the connection, under an id of its own).
        self.summary = redact(summary, secrets) if summary else str(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConnectionConfigError(VendorAuthError, ValueError):
    """A connection field is missing, empty, of the wrong type or invalid.

    Raised before any network call, so a typo never costs a token request.
    """

    def __init__(self, conn_id: str, field: str, problem: str, fix: str, *, label: str | None = None) -> None:
        self.conn_id = conn_id
        self.field = field
        #: The form's word for the field; the JSON name follows in parentheses.
        named = f"{label} ({field})" if label and label != field else f"field {field!r}"
        said = f"{named} {problem}. Fix: {fix}"
        super().__init__(f"Connection {conn_id!r}: {said}", summary=said[0].upper() + said[1:])


class TokenRequestError(VendorAuthError):
    """The token endpoint refused us or answered something unusable."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        conn_id: str,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        secrets: tuple[str, ...] = (),
        summary: str | None = None,
    ) -> None:
        self.vendor = vendor
        self.conn_id = conn_id
        self.status = status
        self.error = error
        self.error_description = error_description
        self.retryable = retryable
        #: Seconds the server asked us to wait (``Retry-After``) before the next attempt.
        self.retry_after = retry_after
        #: A refresh token was presented and no answer came back that says it was not spent (a read timeout,
        #: a dropped connection, a 5xx): the server may have rotated it.
        self.maybe_spent = False
        super().__init__(message, secrets=secrets, summary=summary)


class InvalidTokenResponseError(TokenRequestError):
    """The token endpoint said 2xx but the body is not a usable token (HTML, no access_token, ...)."""


class VendorApiError(VendorAuthError):
    """An API call ended with a non-2xx status (after the retries it deserved)."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        conn_id: str,
        status: int | None,
        body: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
        timed_out: bool = False,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.vendor = vendor
        self.conn_id = conn_id
        self.status = status
        #: The call timed out (no answer in time): like a 429, a sign to slow down.
        self.timed_out = timed_out
        self.body = redact(body, secrets)
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message, secrets=secrets)


class PaginationError(VendorAuthError):
    """A page could not be read as the pagination strategy expects (not JSON, no records, a loop)."""


class ScanStopped(BaseException):
    """Airflow told the task to stop (its SIGTERM): raised in the scan writing pages so the try ends now, its
    last checkpoint committed, or in Kazi's wait for its scan, and Airflow's retries apply (``stopping.py``).

    A ``BaseException``, like Airflow's own ``AirflowTaskTerminated`` and ``KeyboardInterrupt``: it comes
    from a signal handler at any point of the scan, and no ``except Exception`` on the way (an HTTP call's
    error handling, a retry loop) may take it for an error to handle. Not ``AirflowTaskTerminated``
    itself: Airflow 3 fails such a try without its retries, and a stopped scan is worth resuming."""


class QuotaExhausted(VendorApiError):
    """The credential's quota allows no request before a time further away than the connection's
    ``quota_max_wait`` (a daily quota spent, a window the API's headers say is spent): the message names the quota and when
    it resets. Not retried inside the call: a task retry after the reset (or a deferral) is the way on."""

    def __init__(self, message: str, *, vendor: str, conn_id: str, quota: str, resets_at: float) -> None:
        super().__init__(message, vendor=vendor, conn_id=conn_id, status=None, retryable=False)
        self.quota = quota
        #: When the next request may go, seconds since the epoch.
        self.resets_at = resets_at
