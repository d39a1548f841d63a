"""Two costs httpx pays on every request that an API client paging a thousand pages need not.

Measured with cProfile on a 1,000-page scan (``benchmarks/scan.py``): resolving the endpoint against the
base URL parses the URL three times per request (about a fifth of the client's CPU per page), and
every response goes through :mod:`http.cookiejar` (urllib request objects built, the URL parsed again)
even when it sets no cookie. Both answers are the same as httpx's own, only not recomputed.
"""

from __future__ import annotations

import httpx

#: Endpoints resolved per client at most (a scan uses one; calls by id, ``/jobs/{id}``, use many).
MAX_RESOLVED = 256


class ResolvedUrls:
    """Endpoint -> absolute URL against the client's base URL, resolved once by httpx itself
    (:meth:`httpx.Client.build_request`), so the merge rules stay exactly httpx's."""

    def __init__(self) -> None:
        self._known: dict[str, httpx.URL] = {}

    def __call__(self, client: httpx.Client | httpx.AsyncClient, endpoint: str) -> httpx.URL | str:
        url = self._known.get(endpoint)
        if url is None:
            if "://" in endpoint:  # already absolute (a next link): nothing to merge, nothing worth keeping
                return endpoint
            if len(self._known) >= MAX_RESOLVED:
                self._known.clear()
            url = self._known[endpoint] = client.build_request("GET", endpoint).url
        return url


class CookiesWhenSet(httpx.Cookies):
    """httpx's cookie store, skipping the cookie-jar round trip for responses without ``Set-Cookie``
    (a cookie a vendor does set, such as a load balancer's affinity cookie, is still kept and sent)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


def lean_cookies(client: httpx.Client | httpx.AsyncClient) -> None:
    """Give ``client`` a :class:`CookiesWhenSet` over its own jar. The setter (``client.cookies = ...``)
    would copy it into a plain :class:`httpx.Cookies`, so the attribute behind it is replaced; httpx is
    pinned below 1.0, where that attribute is ``_cookies``."""
    if isinstance(getattr(client, "_cookies", None), httpx.Cookies):
        client._cookies = CookiesWhenSet(client.cookies.jar)
