"""TokenEndpoint: sends one credential's token request and reads the answer, with retries.

The answer becomes an :class:`AccessToken` or the right error: transient failures (connection errors,
429 and 5xx, whose ``Retry-After`` is honoured) are retried by the shared policy; a refusal (400, 401,
403: ``invalid_client``, ``invalid_grant``...) never is, and its message carries the identity
provider's ``error`` and ``error_description`` with a fix in the connection form's own words.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import tenacity

from airflow_vendorauth.auth import dpop
from airflow_vendorauth.auth.cache import CacheLockLost
from airflow_vendorauth.auth.discovery import Discovery
from airflow_vendorauth.auth.discovery import token_endpoint as discovered_token_endpoint
from airflow_vendorauth.auth.grants import Attempt, TokenRequest
from airflow_vendorauth.auth.token import AccessToken, parse_token_response
from airflow_vendorauth.auth.warn_once import warn_once
from airflow_vendorauth.exceptions import InvalidTokenResponseError, TokenRequestError, vendor_error_fields
from airflow_vendorauth.quota.limiter import QuotaLimiter
from airflow_vendorauth.redact import excerpt, redact
from airflow_vendorauth.retry import (
    TRANSIENT_STATUSES,
    Outcome,
    RetryPolicy,
    call_flow,
    is_retryable,
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
    "invalid_dpop_proof": "the server refused the DPoP proof: check this machine's clock, and that the server "
    "supports ES256 proofs",
    "AADSTS7000215": "{password} is wrong: paste the secret's value (not its ID)",
    "AADSTS700016": "{login} is unknown in this tenant: check {login} and Tenant ID",
    "AADSTS90002": "the tenant was not found: check Tenant ID",
    "AADSTS70011": "the scope is invalid: check Scope",
    "AADSTS50126": "the user's password is wrong: check User password",
    "AADSTS50076": "the user needs MFA, which the password grant cannot do: use client_credentials",
    "AADSTS700027": "the certificate is not the one registered for the app: upload it in Entra ID (App "
    "registrations > Certificates & secrets) or fill in the registered one",
    "AADSTS700024": "the client assertion is outside its time range: check this machine's clock, or (federated) "
    "that the platform still rotates Assertion file",
    "AADSTS70021": "no federated identity credential of the app matches the assertion's issuer and audience: add one "
    "in Entra ID (App registrations > Certificates & secrets > Federated credentials) with the cluster's OIDC issuer URL "
    "and audience api://AzureADTokenExchange",
    "AADSTS700213": "no federated identity credential of the app matches the assertion's subject: register the pod's "
    "service account (system:serviceaccount:<namespace>:<name>) as the credential's subject",
    "AADSTS50013": "the assertion's signature does not verify with its issuer's published keys: check Assertion file",
    "AADSTS700023": "the client assertion's audience must be the token endpoint: fill in Token URL exactly, or leave "
    "it empty to use Entra's",
}
DEFAULT_LABELS = {"login": "Client ID", "password": "Client secret"}


def _body(request: TokenRequest, headers: Mapping[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"headers": {**request.headers, **headers}}
    if request.json is not None:
        body["json"] = request.json
    else:
        body["data"] = request.form
    return body


#: Attempts that failed before the request could reach the server: nothing was spent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
#: Answers that say the request was not processed (throttled, unavailable, too early, timed out waiting).
_NOT_PROCESSED = frozenset({408, 425, 429, 503})


def may_have_reached_the_server(outcome: Outcome) -> bool:
    """Whether a token request's outcome leaves open that the server processed it (for a refresh token:
    rotated it) though no usable answer came back. A refusal (4xx) was processed and rotated nothing."""
    if isinstance(outcome, httpx.TransportError):
        return not isinstance(outcome, _NOT_SENT)
    status = outcome.status_code
    return (status >= 500 and status not in _NOT_PROCESSED) or 200 <= status < 300


def first_line(text: str | None) -> str | None:
    """Entra appends Trace ID, Correlation ID and Timestamp lines to every description: the first line
    says what is wrong; the rest is for the task log."""
    return text.strip().splitlines()[0].strip() if text and text.strip() else text


class TokenEndpoint:
    """One credential's token endpoint: :meth:`fetch` asks it for a token, with retries.

    Each attempt builds its request anew (``build``): a client assertion is signed for one request, and
    a rotating refresh token is the newest one. With an ``issuer`` instead of a ``token_url``, the
    endpoint is discovered on the first fetch (once per process). Fetches are blocking: the async
    callers run them in a thread, since a token is fetched about once an hour.
    """

    def __init__(
        self,
        *,
        vendor: str,
        conn_id: str,
        build: Callable[[Attempt], TokenRequest],
        token_url: str | None,
        policy: RetryPolicy,
        timeout: float,
        verify: ssl.SSLContext | bool | str,
        logger: logging.Logger,
        issuer: str | None = None,
        expect_jwt: bool = False,
        labels: Mapping[str, str] = DEFAULT_LABELS,
        transport: httpx.BaseTransport | None = None,
        proof_key: dpop.ProofKey | None = None,
        mtls: bool = False,
        limiter: QuotaLimiter | None = None,
    ) -> None:
        self.vendor, self.conn_id, self._build = vendor, conn_id, build
        self._token_url, self._issuer = token_url, issuer
        self._timeout, self._verify, self._expect_jwt, self._log = timeout, verify, expect_jwt, logger
        self._labels = {**DEFAULT_LABELS, **labels}
        self._transport = transport
        #: DPoP (RFC 9449): every token request carries a proof of this key, and tokens are bound to it.
        self._proof_key = proof_key
        self._mtls = mtls
        #: The credential's quota, when the vendor counts token requests in it (``quota_auth_requests``).
        self._limiter = limiter
        self._client: httpx.Client | None = None
        self._current: TokenRequest | None = None
        self._policy = policy
        self._retrying = tenacity.Retrying(**retry_arguments(policy, logger=logger, what=self._what))
        #: Token requests sent (attempts included), for logs and benchmarks.
        self.requests_sent = 0
        #: The longest one fetch may take, retries included: the retry budget plus one last attempt.
        #: Whoever waits for another process's fetch waits this long; a lock lease outlives it.
        self.budget_seconds = policy.max_elapsed_seconds + timeout + 5.0
        #: The longest one attempt may take from our side (connect, write and read, each bounded by the
        #: timeout, and a margin): a refresh token presented under a lock needs the lock this long.
        self.attempt_seconds = 3 * timeout + 2.0

    @property
    def _what(self) -> str:
        return f"{self.vendor} token request for connection {self.conn_id!r}"

    def __repr__(self) -> str:
        where = self._token_url or f"discovered from {self._issuer}"
        return f"TokenEndpoint(vendor={self.vendor!r}, conn_id={self.conn_id!r}, url={where!r})"

    def url(self) -> str:
        """The token endpoint's URL: configured, or discovered from the issuer (once per process)."""
        if self._token_url is None:
            assert self._issuer is not None, "a token endpoint needs a token_url or an issuer"
            how = Discovery(self.vendor, self.conn_id, self._timeout, self._verify, self._transport, self._mtls)
            self._token_url = discovered_token_endpoint(self._issuer, how)
        return self._token_url

    def fetch(self, refresh_token: str | None = None) -> AccessToken:
        """A token from the endpoint (the Test probe may pass a refresh token that cannot exist)."""
        return self._call(refresh_token, self._retrying, None)

    def spend(
        self,
        refresh_token: str,
        *,
        before_send: Callable[[], None],
        repeat_until: float | None = None,
        presented_before: bool = False,
    ) -> AccessToken:
        """Present a rotating refresh token: ``before_send`` runs before each attempt (it proves the lock is
        still ours). An attempt that may have reached the server without an answer coming back (a read
        timeout, a dropped connection, 500/502/504, an unreadable 2xx) may have rotated the token: from then
        on (from the start if ``presented_before``: a spend found in doubt) the token is sent only before
        ``repeat_until`` (epoch seconds: the server's reuse interval), checked just before each attempt, after
        the backoff and the lock's proof, never after; the error then says ``maybe_spent``. Attempts that surely
        did not reach the server (no connection, 429, 503) are retried as any token request is."""
        maybe_taken = [presented_before]  # whether the server may already have taken (rotated) this token

        def retry_on(error: BaseException) -> bool:
            spent = bool(getattr(error, "maybe_spent", False))
            maybe_taken[0] = maybe_taken[0] or spent
            if not is_retryable(error):
                return False
            return not spent or (repeat_until is not None and time.time() < repeat_until)

        def guarded_send() -> None:
            if not maybe_taken[0]:
                before_send()
                return
            try:
                before_send()
            except CacheLockLost as lost:  # a lost lock spends nothing more; what was sent may have been taken
                raise self._not_repeated(f"the fetch lock was lost before the token could be sent again ({lost})") from None
            if repeat_until is None or time.time() >= repeat_until:  # after the proof: it may have taken a while
                raise self._not_repeated("the server's reuse interval (refresh_reuse_interval) has passed")

        retrying = tenacity.Retrying(**retry_arguments(self._policy, retry_on=retry_on, logger=self._log, what=self._what))
        return self._call(refresh_token, retrying, guarded_send)

    def _not_repeated(self, why: str) -> TokenRequestError:
        """A refresh token the server may have taken is not sent again: ``why``."""
        error = self._error(
            f"was not sent again: an earlier presentation of the refresh token got no answer, and {why}",
            f"An earlier presentation of the refresh token got no answer, and {why}",
        )
        error.maybe_spent = True
        return error

    def _call(
        self, refresh_token: str | None, retrying: tenacity.Retrying, before_send: Callable[[], None] | None
    ) -> AccessToken:
        url = self.url()
        if self._client is None:
            self._client = httpx.Client(
                timeout=self._timeout, verify=self._verify, follow_redirects=False, transport=self._transport
            )
        client, key = self._client, self._proof_key
        reached = False  # whether any attempt may have reached the server's refresh (a token spent)

        def send() -> Outcome:
            nonlocal reached
            for _ in range(2):  # the second time only when the server demands a DPoP nonce
                if before_send is not None:
                    before_send()
                request = self._current = self._build(Attempt(url, refresh_token))
                self.requests_sent += 1
                try:
                    response = client.post(url, **_body(request, dpop.token_request_header(key, url) if key else {}))
                except httpx.TransportError as exc:
                    reached = reached or may_have_reached_the_server(exc)
                    return exc
                if key is None or not dpop.nonce_demanded(response):
                    break
            reached = reached or may_have_reached_the_server(response)
            return response

        def send_within_quota() -> Outcome:
            if self._limiter is None:
                return send()
            lease = self._limiter.acquire()  # before the lock's proof: a wait for the quota never eats the lease
            try:
                outcome = send()
            finally:
                self._limiter.release(lease)
            if isinstance(outcome, httpx.Response):
                self._limiter.observe(outcome.status_code, outcome.headers)
            return outcome

        def interpret(outcome: Outcome) -> AccessToken:
            try:
                return self._interpret(outcome)
            except TokenRequestError as error:
                error.maybe_spent = may_have_reached_the_server(outcome)
                raise

        try:
            return run_call(call_flow(retrying, interpret), send_within_quota)
        except TokenRequestError as error:
            error.maybe_spent = error.maybe_spent or (reached and error.error != "invalid_grant")
            raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def _secrets(self) -> tuple[str, ...]:
        return self._current.secrets if self._current else ()

    # ---- what an answer means -------------------------------------------------------------------

    def _error(self, message: str, summary: str, **kwargs: Any) -> TokenRequestError:
        """``message`` for logs (connection, URL); ``summary`` for the Test button, in the form's words. The
        vendor's ``error_description`` is kept redacted too: callers quote it in messages of their own."""
        if kwargs.get("error_description"):
            kwargs["error_description"] = redact(kwargs["error_description"], self._secrets)
        return TokenRequestError(
            f"{self.vendor} token request for connection {self.conn_id!r} to {self._token_url} {message}",
            vendor=self.vendor,
            conn_id=self.conn_id,
            secrets=self._secrets,
            summary=summary,
            **kwargs,
        )

    def _interpret(self, outcome: Outcome) -> AccessToken:
        """The token of a 2xx answer, or the right error."""
        if isinstance(outcome, httpx.TransportError):
            said = f"{type(outcome).__name__}: {outcome}"
            raise self._error(
                f"could not complete: {said}",
                f"The {self.vendor} token endpoint could not be reached ({said}). Fix: check Token URL and the network",
                retryable=True,
            )
        status, text = outcome.status_code, outcome.text
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        if 200 <= status < 300:
            if body is None:
                raise self._not_json(outcome)
            token = parse_token_response(body, vendor=self.vendor, conn_id=self.conn_id, expect_jwt=self._expect_jwt)
            return self._bind(token)
        error, description, codes = vendor_error_fields(body)
        said = ": ".join(p for p in (error, first_line(description)) if p) or excerpt(text, 200) or "no body"
        said = said.rstrip(".")
        if status in TRANSIENT_STATUSES or error == dpop.NONCE_ERROR:
            # (A DPoP nonce demanded again right after the nonce retry: the server rotated it meanwhile.)
            # Entra ID throttles token requests with 429 (or 503) and Retry-After: honour it, as API calls do.
            raise self._error(
                f"got HTTP {status} ({said})",
                f"The {self.vendor} token endpoint answered HTTP {status} ({said}); try again later",
                status=status,
                error=error,
                error_description=description,
                retryable=True,
                retry_after=parse_retry_after(outcome.headers.get("Retry-After")),
            )
        hint = next((HINTS[c] for c in codes if c in HINTS), None) or HINTS.get(error or "")
        hint = (hint or "check {login}, {password} and the token URL").format(**self._labels)
        if description and description.strip() != first_line(description):
            self._log.info("%s token endpoint said in full: %s", self.vendor, redact(description, self._secrets))
        raise self._error(
            f"was refused with HTTP {status}: {said}. Fix: {hint}",
            f"{self.vendor} refused the credentials (HTTP {status}): {said}. Fix: {hint[0].upper()}{hint[1:]}",
            status=status,
            error=error,
            error_description=first_line(description),
            retryable=False,
        )

    def _bind(self, token: AccessToken) -> AccessToken:
        """A DPoP-bound token keeps the key it is bound to; a server that binds nothing is said once."""
        if self._proof_key is None:
            return token
        if token.token_type != dpop.SCHEME:
            warn_once(
                self._log,
                f"dpop-unbound:{self.conn_id}",
                "%s connection %r has dpop on, but the token endpoint issued a %s token (not bound to the key): "
                "the server does not support DPoP, and the token is used as a bearer token",
                self.vendor,
                self.conn_id,
                token.token_type,
            )
            return token
        return dataclasses.replace(token, proof_key=self._proof_key.to_jwk())

    def _not_json(self, response: httpx.Response) -> InvalidTokenResponseError:
        content_type = response.headers.get("content-type", "no content type")
        shown = excerpt(redact(response.text, self._secrets), 120) or "an empty body"
        return InvalidTokenResponseError(
            f"{self.vendor} token endpoint for connection {self.conn_id!r} answered HTTP {response.status_code} "
            f"with {content_type} that is not JSON ({shown!r}); a proxy or a wrong token URL is the usual cause",
            vendor=self.vendor,
            conn_id=self.conn_id,
            status=response.status_code,
            retryable=True,
            secrets=self._secrets,
        )
