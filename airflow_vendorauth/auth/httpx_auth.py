"""An ``httpx.Auth`` that attaches the bearer token and the vendor's headers, and on a 401 drops the
token that failed, fetches a new one and resends the request once.

A DPoP-bound token (RFC 9449, :mod:`.dpop`) goes as ``Authorization: DPoP`` with a fresh proof of its
key on every request; the API's demand for a nonce is answered by one more send with the nonce (the
token is fine, so it is not dropped), before the 401 rule above applies.

Only requests to the API's own origin get the credentials, and only a 401 from that origin, to a request
that carried them, says anything about the token: a request to another origin (an absolute URL, a redirect) travels without
our headers, so its 401 is about their absence and must not evict a good token.

A body that cannot be sent twice (a generator, an iterator, a file that cannot seek: :mod:`.replay`) is
never resent: the 401 drops the refused token (so the next call fetches a new one) but fetches none now,
which on a rotating refresh-token connection would spend a rotation on a request that cannot use it; a
nonce demand is remembered for the next call. The 401 comes back marked (:data:`NOT_RESENT`) with the
reason, which the API client turns into the error. A file that can seek is rewound and resent.

httpx runs the auth flow outside its redirect handling, so the headers set here would follow a
redirect; the hook's request event hook strips them from any request that leaves the API's origin.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping

import httpx

from airflow_vendorauth.auth import dpop
from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.replay import ONE_TIME_BODY, BodyReplay
from airflow_vendorauth.auth.token import AccessToken

#: Scheme, host and port of a URL.
Origin = tuple[str, str, int]

#: The key, in a response's ``extensions``, of why a 401 to a request with a one-time body was not resent.
NOT_RESENT = "vendorauth.not_resent"
TOKEN_NOT_RESENT = (
    f"It was not sent again with a new token: {ONE_TIME_BODY}. The refused token was dropped and no new one "
    "fetched for it: the next call fetches one"
)
NONCE_NOT_RESENT = (
    f"The API asked for a DPoP nonce, and the request was not sent again with it: {ONE_TIME_BODY}. The nonce "
    "is kept: the next call carries it"
)


class VendorAuth(httpx.Auth):
    """Bearer token + vendor headers, refresh once on 401 (a second 401 is returned to the caller)."""

    def __init__(self, provider: TokenProvider, headers: Mapping[str, str], api_url: str) -> None:
        self.provider = provider
        self.headers = dict(headers)
        self.origin = origin_of(httpx.URL(api_url))
        #: The token sent last, so an error message can name its roles without another fetch.
        self.last_token: AccessToken | None = None

    def __repr__(self) -> str:
        return f"VendorAuth(provider={self.provider!r}, headers={sorted(self.headers)!r})"

    def _send(self, request: httpx.Request, token: AccessToken, body: BodyReplay) -> Flow:
        """Send with ``token``: as a bearer token, or DPoP-bound with its proofs and nonce retry."""
        self.last_token = token
        request.headers.update(self.headers)
        if token.proof_key is not None:
            key = dpop.ProofKey.from_jwk(token.proof_key)
            return (yield from _resending(dpop.bound_flow(request, token.access_token, key), body))
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        return (yield request)

    def _ours(self, url: httpx.URL) -> bool:
        return origin_of(url) == self.origin

    def _refused(self, response: httpx.Response) -> bool:
        """A 401 about our token: from the API's origin, to a request that carried it. A redirect that went
        to another origin and came back home arrives without it (stripped on the way out, never put back):
        that 401 is about its absence, and a good token must not be dropped (a rotation spent) for it. A
        nonce demand left unanswered (:data:`NOT_RESENT`) says nothing against the token either."""
        sent = response.request
        return (
            response.status_code == 401
            and self._ours(sent.url)
            and "Authorization" in sent.headers
            and NOT_RESENT not in response.extensions
        )

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._ours(request.url):
            yield request
            return
        body = BodyReplay.of_request(request)  # before the first send, which may use the body up
        token = self.provider.get_token()
        response = yield from self._send(request, token, body)
        if self._refused(response):
            self.provider.invalidate(token)
            if not body.possible:
                response.extensions[NOT_RESENT] = TOKEN_NOT_RESENT
                return
            body.rewind()
            yield from self._send(request, self.provider.get_token(), body)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._ours(request.url):
            yield request
            return
        body = BodyReplay.of_request(request)
        token = await self.provider.aget_token()
        flow = self._send(request, token, body)  # the same sync decisions, driven from here
        step: httpx.Request | httpx.Response = next(flow)
        while isinstance(step, httpx.Request):
            step = _step(flow, (yield step))
        if self._refused(step):
            await self.provider.ainvalidate(token)
            if not body.possible:
                step.extensions[NOT_RESENT] = TOKEN_NOT_RESENT
                return
            body.rewind()
            flow = self._send(request, await self.provider.aget_token(), body)
            step = next(flow)
            while isinstance(step, httpx.Request):
                step = _step(flow, (yield step))


Flow = Generator[httpx.Request, httpx.Response, httpx.Response]


def _resending(flow: Flow, body: BodyReplay) -> Flow:
    """Run a send flow that may send the request again (DPoP's nonce retry): rewind the body before a
    second send, or, when it cannot be sent again, end with the answer that asked for it, marked."""
    request = next(flow)
    while True:
        response = yield request
        try:
            request = flow.send(response)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if not body.possible:
            flow.close()
            response.extensions[NOT_RESENT] = NONCE_NOT_RESENT
            return response
        body.rewind()


def _step(flow: Flow, response: httpx.Response) -> httpx.Request | httpx.Response:
    """Hand a response to a send flow: the next request it wants sent, or its final response."""
    try:
        return flow.send(response)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def origin_of(url: httpx.URL) -> Origin:
    """Scheme, host and port (the default one filled in): two URLs of one origin compare equal."""
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    return (url.scheme, url.host, port)
