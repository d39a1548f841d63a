"""An ``httpx.Auth`` that attaches the bearer token and the vendor's headers, and on a 401 drops the
token that failed, fetches a new one and resends the request once.

Only requests to the API's own origin get the credentials, and only a 401 from that origin says
anything about the token: a request to another origin (an absolute URL, a redirect) travels without
our headers, so its 401 is about their absence and must not evict a good token.

httpx runs the auth flow outside its redirect handling, so the headers set here would follow a
redirect; the hook's request event hook strips them from any request that leaves the API's origin.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping

import httpx

from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.token import AccessToken

#: Scheme, host and port of a URL.
Origin = tuple[str, str, int]


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

    def _authorise(self, request: httpx.Request, token: AccessToken) -> httpx.Request:
        self.last_token = token
        request.headers.update(self.headers)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        return request

    def _ours(self, url: httpx.URL) -> bool:
        return origin_of(url) == self.origin

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._ours(request.url):
            yield request
            return
        token = self.provider.get_token()
        response = yield self._authorise(request, token)
        if response.status_code == 401 and self._ours(response.request.url):
            self.provider.invalidate(token)
            yield self._authorise(request, self.provider.get_token())

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._ours(request.url):
            yield request
            return
        token = await self.provider.aget_token()
        response = yield self._authorise(request, token)
        if response.status_code == 401 and self._ours(response.request.url):
            await self.provider.ainvalidate(token)
            yield self._authorise(request, await self.provider.aget_token())


def origin_of(url: httpx.URL) -> Origin:
    """Scheme, host and port (the default one filled in): two URLs of one origin compare equal."""
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    return (url.scheme, url.host, port)
