"""The bridge for existing HTTP DAGs: managed vendor tokens for ``HttpHook``, ``HttpOperator`` and
``HttpSensor``, without a rewrite (what apache/airflow issue 48798 asks of Airflow itself).

``auth_type=vendor_auth("kazi_default")`` makes every request of those carry the connection's token
(from its token cache: memory, file or Redis, shared with the vendor hooks), the vendor's headers
(``Ocp-Apim-Subscription-Key``, ``x-api-caller-id``...), refreshed before expiry; a 401 drops that token,
fetches a new one and resends the request once. The base URL still comes from the HTTP connection.

Credentials stay at home: the token and the vendor's headers go only to the HTTP connection's own origin
(scheme, host and port of the first request this auth signs: the connection's base URL). A request to
another origin (an absolute URL) carries none of them; a redirect to another origin has them removed
before it is followed (``requests`` itself strips only ``Authorization``), whether it answers the first
send, a redirect at home or the 401 resend (which goes through the adapter, where no response hook runs:
the resend guards its own answer); a 401 from another origin, or to a request that came home from one
bare, is returned as is, never answered with a token. The 401 resend replays the body when it can (bytes, a
string, a file it can rewind); a body it cannot replay (a generator) is not resent empty: the 401 comes
back with a reason that says why.

A connection with DPoP (``dpop``) or mutual TLS (``client_certificate``) is refused, naming the field and
the fix: the bridge can neither sign proofs nor present the certificate its tokens are bound to.

Only the ``requests`` path of the HTTP provider takes it: the deferrable ``HttpOperator`` and
``HttpAsyncHook`` build an aiohttp ``BasicAuth`` from the connection's login and password, which a bearer
token cannot be; use ``VendorApiOperator`` (deferrable paging is its job) or ``VendorApiSensor`` there.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase
from requests.exceptions import UnrewindableBodyError
from requests.utils import rewind_body

if TYPE_CHECKING:
    from airflow_vendorauth.quota.limiter import HeldLease

log = logging.getLogger(__name__)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str | None) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the default port made explicit: what "the same origin" compares."""
    parts = urlsplit(url or "")
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def _replayable(request: requests.PreparedRequest) -> bool:
    """Whether the body can be sent again: none, bytes, a string, or a file rewound to where it began."""
    if request.body is None or isinstance(request.body, (bytes, str)):
        return True
    try:
        rewind_body(request)
    except UnrewindableBodyError:
        return False
    return True


def _hold_lease(request: requests.PreparedRequest, limiter: Any) -> None:
    from airflow_vendorauth.quota.limiter import hold_until_answered  # only once a limiter is in use

    request._vendorauth_lease = hold_until_answered(request, limiter, limiter.acquire())  # type: ignore[attr-defined]


class VendorTokenAuth(AuthBase):
    """A ``requests`` auth that sends a vendor connection's managed token. Made by :func:`vendor_auth`."""

    conn_id: ClassVar[str]

    def __init__(self, *_http_login_and_password: Any) -> None:
        # HttpHook passes the HTTP connection's login and password: the vendor connection has the
        # credentials, read on the first request (never at DAG parse time).
        self._vendor_hook: Any = None
        #: The origin the token may go to: the first request's (the HTTP connection's base URL).
        self._home: tuple[str, str, int | None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> VendorTokenAuth:
        return type(self)()  # operators are copied per task try: a copy starts without a hook

    @property
    def _hook(self) -> Any:
        if self._vendor_hook is None:
            from airflow_vendorauth.hooks.base import hook_for_connection

            hook = hook_for_connection(self.conn_id)
            if hook.settings.extras.get("dpop"):
                from airflow_vendorauth.exceptions import ConnectionConfigError

                # A bound token sent as Bearer without its proof is a downgrade (RFC 9449 7.1) that the API
                # refuses; the 401 would then drop the shared token and fetch another: refuse up front.
                raise ConnectionConfigError(
                    self.conn_id,
                    "dpop",
                    "is true, but the HTTP bridge (vendor_auth) sends tokens as Bearer and cannot sign DPoP proofs",
                    "call this API with VendorApiOperator, VendorApiSensor or the connection's hook, which send a "
                    "proof with every request",
                )
            if hook.settings.client_certificate is not None:
                from airflow_vendorauth.exceptions import ConnectionConfigError

                # requests presents a certificate only from the HTTP connection's files; the token this
                # connection gets is bound to its certificate (RFC 8705 3) and is refused without it, and
                # each 401 would drop the shared token and fetch another: refuse up front.
                raise ConnectionConfigError(
                    self.conn_id,
                    "client_certificate",
                    "is set (mutual TLS), but the HTTP bridge (vendor_auth) cannot present the certificate its "
                    "tokens are bound to",
                    "call this API with VendorApiOperator, VendorApiSensor or the connection's hook, which present "
                    "it on every request",
                )
            self._vendor_hook = hook
        return self._vendor_hook

    def _at_home(self, url: str | None) -> bool:
        return self._home is not None and origin_of(url) == self._home

    def _our_headers(self) -> list[str]:
        return ["Authorization", *self._hook.client.api_headers]

    def _authorise(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._hook.get_token()
        request.headers.update(self._hook.client.api_headers)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        return request

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._home is None:
            self._home = origin_of(request.url)
        if not self._at_home(request.url):
            return request  # another origin: no token, no vendor header, no 401 handling
        request.register_hook("response", self._guard_response)
        self._authorise(request)
        limiter = self._hook.client.limiter
        if limiter is not None:  # the credential's quota, shared with its hooks and operators (issue 34)
            _hold_lease(request, limiter)
        return request

    def _guard_response(self, response: requests.Response, **send_options: Any) -> requests.Response:
        """Run on every answer requests sees: the first send's and each redirect's (the resend's answer,
        which requests does not show its hooks, is guarded by :meth:`_resend`). ``response.request`` is the
        request requests copies to follow a redirect of this answer: what it carries, the next hop carries."""
        sent = response.request
        held: HeldLease | None = getattr(sent, "_vendorauth_lease", None)
        if held is not None and held.give_back():  # once per request (a redirect's hop is a copy of the request)
            held.limiter.observe(response.status_code, response.headers)
        if not self._at_home(sent.url):
            return response  # a redirect took the request elsewhere: its 401 is returned as is
        if self._leaving(response):
            # requests copies this request's headers into the redirected one and strips only Authorization:
            # remove every header of ours before it is followed to another origin.
            self._strip(sent)
            return response
        if response.status_code != 401 or getattr(sent, "_vendorauth_resent", False):
            return response
        refused = str(sent.headers.get("Authorization", ""))
        if not refused.startswith("Bearer "):
            return response  # it came home bare from another origin: the 401 is about that, not our token
        self._hook.client.provider.forget(refused.removeprefix("Bearer "))
        response.content  # noqa: B018 - read the body so the connection can be reused
        if not _replayable(sent):
            response.reason = (
                f"{response.reason or 'Unauthorized'} (not resent with a new token of connection "
                f"{self.conn_id!r}: the request body was a stream that cannot be read twice; send bytes or a "
                "file object that can seek instead, or call again: the next request gets the new token)"
            )
            log.warning("HTTP 401 from %s: %s", sent.url, response.reason)
            return response
        response.close()
        return self._resend(response, sent, send_options)

    def _resend(
        self, refused: requests.Response, sent: requests.PreparedRequest, send_options: dict[str, Any]
    ) -> requests.Response:
        """Send ``sent`` once more with a new token, through the adapter (no hooks run there), and guard the
        answer as requests would have: requests follows its redirects from ``sent`` (the request it was
        given), not from the copy sent here, so ``sent`` takes the copy's headers (the new token, for a
        redirect at home) and loses all of ours if the answer points to another origin."""
        again = self._authorise(sent.copy())
        again._vendorauth_resent = True  # type: ignore[attr-defined]
        limiter = self._hook.client.limiter
        if limiter is not None:  # the resend is one more request the API counts: a permit of its own
            _hold_lease(again, limiter)
        answer: requests.Response = refused.connection.send(again, **send_options)  # type: ignore[attr-defined]
        held: HeldLease | None = getattr(again, "_vendorauth_lease", None)
        if held is not None and held.give_back():
            held.limiter.observe(answer.status_code, answer.headers)
        answer.history.append(refused)
        answer.request = again
        sent.headers = again.headers.copy()
        if self._leaving(answer):
            self._strip(sent)
            self._strip(again)
        return answer

    def _leaving(self, response: requests.Response) -> bool:
        """A redirect whose target (resolved as requests resolves it) is not this auth's home origin."""
        return response.is_redirect and not self._at_home(urljoin(response.url or "", response.headers["location"]))

    def _strip(self, request: requests.PreparedRequest) -> None:
        for name in self._our_headers():
            request.headers.pop(name, None)


def vendor_auth(conn_id: str) -> type[VendorTokenAuth]:
    """An ``auth_type`` for ``HttpHook`` and ``HttpOperator``, with ``conn_id``'s managed token.

    ``conn_id`` is a connection of one of this provider's types (kazi, keyavi, kayzen, smartrecruiters,
    clazar, oauth2); the HTTP connection of the operator keeps giving the base URL. ``HttpSensor`` takes
    no ``auth_type``: give it an instance through requests, ``request_kwargs={"auth": vendor_auth(c)()}``.
    """
    return type(f"VendorTokenAuth[{conn_id}]", (VendorTokenAuth,), {"conn_id": conn_id})
