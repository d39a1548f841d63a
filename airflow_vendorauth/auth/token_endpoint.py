"""TokenEndpoint: sends one credential's token request and reads the answer, with retries.

The answer becomes an :class:`AccessToken` or the right error: transient failures (connection errors,
429 and 5xx, whose ``Retry-After`` is honoured) are retried by the shared policy; a refusal (400, 401,
403: ``invalid_client``, ``invalid_grant``...) never is, and its message carries the identity
provider's ``error`` and ``error_description`` with a fix in the connection form's own words.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import tenacity

from airflow_vendorauth.auth.grants import TokenRequest
from airflow_vendorauth.auth.token import AccessToken, parse_token_response
from airflow_vendorauth.exceptions import InvalidTokenResponseError, TokenRequestError, vendor_error_fields
from airflow_vendorauth.redact import excerpt, redact
from airflow_vendorauth.retry import (
    TRANSIENT_STATUSES,
    Outcome,
    RetryPolicy,
    arun_call,
    call_flow,
    parse_retry_after,
    retry_arguments,
    run_call,
)

#: What to tell the user for the errors identity providers send most (Microsoft's AADSTS codes too).
#: ``{login}`` and ``{password}`` are the connection form's labels of those fields.
HINTS: dict[str, str] = {
    "invalid_client": "check {login} and {password}",
    "unauthorized_client": "the application is not allowed this grant; ask the vendor to enable it",
    "invalid_grant": "check the user's name and password",
    "invalid_scope": "check Scope",
    "invalid_request": "check the connection's extra fields (resource, scope, grant type)",
    "AADSTS7000215": "{password} is wrong: paste the secret's value (not its ID)",
    "AADSTS700016": "{login} is unknown in this tenant: check {login} and Tenant ID",
    "AADSTS90002": "the tenant was not found: check Tenant ID",
    "AADSTS70011": "the scope is invalid: check Scope",
    "AADSTS50126": "the user's password is wrong: check User password",
    "AADSTS50076": "the user needs MFA, which the password grant cannot do: use client_credentials",
}
DEFAULT_LABELS = {"login": "Client ID", "password": "Client secret"}


def first_line(text: str | None) -> str | None:
    """Entra appends Trace ID, Correlation ID and Timestamp lines to every description: the first line
    says what is wrong; the rest is for the task log."""
    return text.strip().splitlines()[0].strip() if text and text.strip() else text


class TokenEndpoint:
    """One credential's token endpoint: :meth:`fetch` (sync) and :meth:`afetch` (async)."""

    def __init__(
        self,
        *,
        vendor: str,
        conn_id: str,
        token_request: TokenRequest,
        policy: RetryPolicy,
        timeout: float,
        verify: bool,
        logger: logging.Logger,
        expect_jwt: bool = False,
        labels: Mapping[str, str] = DEFAULT_LABELS,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.vendor, self.conn_id, self.request = vendor, conn_id, token_request
        self._timeout, self._verify, self._expect_jwt, self._log = timeout, verify, expect_jwt, logger
        self._labels = {**DEFAULT_LABELS, **labels}
        self._transport, self._async_transport = transport, async_transport
        self._client: httpx.Client | None = None
        self._retrying = tenacity.Retrying(
            **retry_arguments(policy, logger=logger, what=f"{vendor} token request for connection {conn_id!r}")
        )
        #: Token requests sent (attempts included), for logs and benchmarks.
        self.requests_sent = 0
        #: The longest one fetch may take, retries included: the retry budget plus one last attempt.
        #: Whoever waits for another process's fetch waits this long; a lock lease outlives it.
        self.budget_seconds = policy.max_elapsed_seconds + timeout + 5.0

    def __repr__(self) -> str:
        return f"TokenEndpoint(vendor={self.vendor!r}, conn_id={self.conn_id!r}, url={self.request.url!r})"

    def _http_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self.request.headers}
        if self.request.json is not None:
            kwargs["json"] = self.request.json
        else:
            kwargs["data"] = self.request.form
        return kwargs

    def fetch(self) -> AccessToken:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self._timeout, verify=self._verify, follow_redirects=False, transport=self._transport
            )
        client = self._client

        def send() -> Outcome:
            self.requests_sent += 1
            try:
                return client.post(self.request.url, **self._http_kwargs())
            except httpx.TransportError as exc:
                return exc

        return run_call(call_flow(self._retrying, self._interpret), send)

    async def afetch(self) -> AccessToken:
        # A client per fetch: the async path serves triggers, whose event loops come and go, and an
        # AsyncClient must not outlive its loop. Token requests are rare, so this costs nothing.
        async with httpx.AsyncClient(
            timeout=self._timeout, verify=self._verify, follow_redirects=False, transport=self._async_transport
        ) as client:

            async def send() -> Outcome:
                self.requests_sent += 1
                try:
                    return await client.post(self.request.url, **self._http_kwargs())
                except httpx.TransportError as exc:
                    return exc

            return await arun_call(call_flow(self._retrying, self._interpret), send)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- what an answer means -------------------------------------------------------------------

    def _error(self, message: str, **kwargs: Any) -> TokenRequestError:
        return TokenRequestError(
            f"{self.vendor} token request for connection {self.conn_id!r} to {self.request.url} {message}",
            vendor=self.vendor,
            conn_id=self.conn_id,
            secrets=self.request.secrets,
            **kwargs,
        )

    def _interpret(self, outcome: Outcome) -> AccessToken:
        """The token of a 2xx answer, or the right error."""
        if isinstance(outcome, httpx.TransportError):
            raise self._error(f"could not complete: {type(outcome).__name__}: {outcome}", retryable=True)
        status, text = outcome.status_code, outcome.text
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        if 200 <= status < 300:
            if body is None:
                raise self._not_json(outcome)
            return parse_token_response(body, vendor=self.vendor, conn_id=self.conn_id, expect_jwt=self._expect_jwt)
        error, description, codes = vendor_error_fields(body)
        said = ": ".join(p for p in (error, first_line(description)) if p) or excerpt(text, 200) or "no body"
        if status in TRANSIENT_STATUSES:
            # Entra ID throttles token requests with 429 (or 503) and Retry-After: honour it, as API calls do.
            raise self._error(
                f"got HTTP {status} ({said})",
                status=status,
                error=error,
                error_description=description,
                retryable=True,
                retry_after=parse_retry_after(outcome.headers.get("Retry-After")),
            )
        hint = next((HINTS[c] for c in codes if c in HINTS), None) or HINTS.get(error or "")
        hint = (hint or "check {login}, {password} and the token URL").format(**self._labels)
        if description and description.strip() != first_line(description):
            self._log.info("%s token endpoint said in full: %s", self.vendor, redact(description, self.request.secrets))
        raise self._error(
            f"was refused with HTTP {status}: {said}. Fix: {hint}",
            status=status,
            error=error,
            error_description=first_line(description),
            retryable=False,
        )

    def _not_json(self, response: httpx.Response) -> InvalidTokenResponseError:
        content_type = response.headers.get("content-type", "no content type")
        shown = excerpt(redact(response.text, self.request.secrets), 120) or "an empty body"
        return InvalidTokenResponseError(
            f"{self.vendor} token endpoint for connection {self.conn_id!r} answered HTTP {response.status_code} "
            f"with {content_type} that is not JSON ({shown!r}); a proxy or a wrong token URL is the usual cause",
            vendor=self.vendor,
            conn_id=self.conn_id,
            status=response.status_code,
            retryable=True,
            secrets=self.request.secrets,
        )
