"""The bridge for existing HTTP DAGs: managed vendor tokens for ``HttpHook``, ``HttpOperator`` and
``HttpSensor``, without a rewrite (what apache/airflow issue 48798 asks of Airflow itself).

``auth_type=vendor_auth("kazi_default")`` makes every request of those carry the connection's token
(from its token cache: memory, file or Redis, shared with the vendor hooks), the vendor's headers
(``Ocp-Apim-Subscription-Key``, ``x-api-caller-id``...), refreshed before expiry; a 401 drops that token,
fetches a new one and resends the request once. The base URL still comes from the HTTP connection.

Only the ``requests`` path of the HTTP provider takes it: the deferrable ``HttpOperator`` and
``HttpAsyncHook`` build an aiohttp ``BasicAuth`` from the connection's login and password, which a bearer
token cannot be; use ``VendorApiOperator`` (deferrable paging is its job) or ``VendorApiSensor`` there.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests
from requests.auth import AuthBase


class VendorTokenAuth(AuthBase):
    """A ``requests`` auth that sends a vendor connection's managed token. Made by :func:`vendor_auth`."""

    conn_id: ClassVar[str]

    def __init__(self, *_http_login_and_password: Any) -> None:
        # HttpHook passes the HTTP connection's login and password: the vendor connection has the
        # credentials, read on the first request (never at DAG parse time).
        self._vendor_hook: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> VendorTokenAuth:
        return type(self)()  # operators are copied per task try: a copy starts without a hook

    @property
    def _hook(self) -> Any:
        if self._vendor_hook is None:
            from airflow_vendorauth.hooks.base import hook_for_connection

            self._vendor_hook = hook_for_connection(self.conn_id)
        return self._vendor_hook

    def _authorise(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._hook.get_token()
        request.headers.update(self._hook.client.api_headers)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        return request

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.register_hook("response", self._refresh_once_on_401)
        return self._authorise(request)

    def _refresh_once_on_401(self, response: requests.Response, **send_options: Any) -> requests.Response:
        sent = response.request
        if response.status_code != 401 or getattr(sent, "_vendorauth_resent", False):
            return response
        refused = str(sent.headers.get("Authorization", "")).removeprefix("Bearer ")
        self._hook.client.provider.forget(refused)
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        again = self._authorise(sent.copy())
        again._vendorauth_resent = True  # type: ignore[attr-defined]
        answer: requests.Response = response.connection.send(again, **send_options)  # type: ignore[attr-defined]
        answer.history.append(response)
        answer.request = again
        return answer


def vendor_auth(conn_id: str) -> type[VendorTokenAuth]:
    """An ``auth_type`` for ``HttpHook`` and ``HttpOperator``, with ``conn_id``'s managed token.

    ``conn_id`` is a connection of one of this provider's types (kazi, keyavi, kayzen, smartrecruiters,
    clazar, oauth2); the HTTP connection of the operator keeps giving the base URL. ``HttpSensor`` takes
    no ``auth_type``: give it an instance through requests, ``request_kwargs={"auth": vendor_auth(c)()}``.
    """
    return type(f"VendorTokenAuth[{conn_id}]", (VendorTokenAuth,), {"conn_id": conn_id})
