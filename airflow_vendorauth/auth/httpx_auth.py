"""An ``httpx.Auth`` that attaches the bearer token and the vendor's headers, and on a 401 drops the
token that failed, fetches a new one and resends the request once.

httpx runs the auth flow outside its redirect handling, so the headers set here would follow a
redirect; the hook's request event hook strips them from any request that leaves the API's origin.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping

import httpx

from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.token import AccessToken


class VendorAuth(httpx.Auth):
    """Bearer token + vendor headers, refresh once on 401 (a second 401 is returned to the caller)."""

    def __init__(self, provider: TokenProvider, headers: Mapping[str, str]) -> None:
        self.provider = provider
        self.headers = dict(headers)
        #: How many times a 401 made us refresh the token, for logs and tests.
        self.refreshes_on_401 = 0
        #: The token sent last, so an error message can name its roles without another fetch.
        self.last_token: AccessToken | None = None

    def __repr__(self) -> str:
        return f"VendorAuth(provider={self.provider!r}, headers={sorted(self.headers)!r})"

    def _authorise(self, request: httpx.Request, token: AccessToken) -> httpx.Request:
        self.last_token = token
        request.headers.update(self.headers)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        return request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.provider.get_token()
        response = yield self._authorise(request, token)
        if response.status_code == 401:
            self.refreshes_on_401 += 1
            self.provider.invalidate(token)
            yield self._authorise(request, self.provider.get_token())

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.provider.aget_token()
        response = yield self._authorise(request, token)
        if response.status_code == 401:
            self.refreshes_on_401 += 1
            await self.provider.ainvalidate(token)
            yield self._authorise(request, await self.provider.aget_token())
