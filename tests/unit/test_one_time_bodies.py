"""A body that can be read only once (a generator, an iterator, a file that cannot seek) is never sent
twice by the hooks: a 401 drops the refused token but fetches no new one (on a rotating connection that
would spend a rotation for a request that cannot use it) and ends in an error naming the connection and
why; a retry is not attempted; a DPoP nonce demand is left for the next call. A file that can seek is
rewound and sent whole again (issue 31, item 6).

The transports here send a body as a network transport does, by iterating the request's stream;
httpx.MockTransport reads every body into memory first, which would make any body replayable.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from airflow_vendorauth.exceptions import VendorApiError
from airflow_vendorauth.retry import RetryPolicy
from tests.unit.fakes import hook_for, is_token_request, seed_token_body, set_connection

PAYLOAD = b"line of an upload\n" * 2000
Answer = Callable[[httpx.Request, bytes], httpx.Response]


class Api:
    """A Clazar token endpoint, and an API answering each call with the next of ``answers`` (then 200)."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)
        self.tokens: list[str] = []
        self.calls: list[tuple[str, bytes]] = []  # (Authorization, body)

    def __call__(self, request: httpx.Request, body: bytes) -> httpx.Response:
        if is_token_request(request):
            self.tokens.append(f"token-{len(self.tokens) + 1}-{'x' * 20}")
            return httpx.Response(200, json=seed_token_body("clazar", self.tokens[-1]))
        self.calls.append((request.headers["Authorization"], body))
        status = self.answers.pop(0) if self.answers else 200
        return httpx.Response(status, json={"message": "no" if status >= 400 else "ok"})


class Streaming(httpx.BaseTransport):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.answer(request, b"".join(request.stream))  # type: ignore[arg-type]


class AsyncStreaming(httpx.AsyncBaseTransport):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.answer(request, b"".join([chunk async for chunk in request.stream]))  # type: ignore[union-attr]


def clazar(monkeypatch: pytest.MonkeyPatch, api: Api, attempts: int = 1):  # type: ignore[no-untyped-def]
    set_connection(monkeypatch, "clazar")
    return hook_for(
        "clazar", transport=Streaming(api), async_transport=AsyncStreaming(api), retry_policy=RetryPolicy(max_attempts=attempts)
    )


def chunks() -> Iterator[bytes]:
    yield PAYLOAD[:100]
    yield PAYLOAD[100:]


async def achunks() -> AsyncIterator[bytes]:
    yield PAYLOAD[:100]
    yield PAYLOAD[100:]


class Lines:
    """An iterable that is not its own iterator but reads on from where its file stands (a reader object)."""

    def __init__(self, file: io.BytesIO) -> None:
        self.file = file

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.file.readline, b"")


class AsyncFile:
    """As anyio's and aiofiles' files: iterated asynchronously, from where the file stands."""

    def __init__(self, file: io.BytesIO) -> None:
        self.file = file

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for line in iter(self.file.readline, b""):
            yield line


@pytest.mark.parametrize(
    "body",
    [chunks, lambda: iter([PAYLOAD]), lambda: io.BufferedReader(io.BytesIO(PAYLOAD)), lambda: Lines(io.BytesIO(PAYLOAD))],
    ids=["generator", "iterator", "unseekable-file", "reader-of-a-file"],
)
def test_a_401_to_a_one_time_body_fetches_no_token_and_says_why(
    monkeypatch: pytest.MonkeyPatch, body: Callable[[], object]
) -> None:
    source = body()
    if isinstance(source, io.BufferedReader):
        monkeypatch.setattr(source, "seekable", lambda: False)
    api = Api(401)
    hook = clazar(monkeypatch, api)
    with pytest.raises(VendorApiError) as refused:
        hook.request("POST", "/uploads", content=source)
    said = str(refused.value)
    assert refused.value.status == 401 and "'clazar'" in said
    assert "not sent again with a new token" in said and "read only once" in said and "next call fetches one" in said
    assert "A fresh token was refused too" not in said  # no fresh token was tried
    assert len(api.tokens) == 1 and [b for _, b in api.calls] == [PAYLOAD]  # sent once, whole
    hook.request("POST", "/uploads", content=PAYLOAD)  # the refused token was dropped
    assert len(api.tokens) == 2 and api.calls[-1][0] == f"Bearer {api.tokens[1]}"


@pytest.mark.parametrize("body", [achunks, lambda: AsyncFile(io.BytesIO(PAYLOAD))], ids=["async-generator", "async-file"])
def test_async_a_401_to_an_async_stream_fetches_no_token(
    monkeypatch: pytest.MonkeyPatch, body: Callable[[], object]
) -> None:
    api = Api(401)
    hook = clazar(monkeypatch, api)

    async def call() -> None:
        try:
            with pytest.raises(VendorApiError, match="not sent again with a new token"):
                await hook.arequest("POST", "/uploads", content=body())
        finally:
            await hook.aclose()

    asyncio.run(call())
    assert len(api.tokens) == 1 and [b for _, b in api.calls] == [PAYLOAD]


def test_a_file_that_can_seek_is_resent_whole_from_where_it_stood(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(401)
    file = io.BytesIO(b"HEADER-NOT-SENT" + PAYLOAD)
    file.seek(len(b"HEADER-NOT-SENT"))
    clazar(monkeypatch, api).request("POST", "/uploads", content=file)
    assert [b for _, b in api.calls] == [PAYLOAD, PAYLOAD]
    assert [a for a, _ in api.calls] == [f"Bearer {t}" for t in api.tokens] and len(api.tokens) == 2


def test_chunks_in_a_list_are_resent(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(401)
    clazar(monkeypatch, api).request("POST", "/uploads", content=[PAYLOAD[:7], PAYLOAD[7:]])
    assert [b for _, b in api.calls] == [PAYLOAD, PAYLOAD] and len(api.tokens) == 2


def test_a_one_time_body_is_not_retried_after_a_5xx(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(503)
    with pytest.raises(VendorApiError) as failed:
        clazar(monkeypatch, api, attempts=3).request("PUT", "/uploads/1", content=chunks())
    assert failed.value.status == 503 and not failed.value.retryable
    assert "Not retried" in str(failed.value) and "read only once" in str(failed.value)
    assert len(api.calls) == 1


def test_a_file_that_can_seek_is_retried_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("airflow_vendorauth.retry.time.sleep", lambda seconds: None)
    api = Api(503)
    file = io.BytesIO(PAYLOAD)
    clazar(monkeypatch, api, attempts=3).request("PUT", "/uploads/1", content=file)
    assert [b for _, b in api.calls] == [PAYLOAD, PAYLOAD]


def test_a_redirect_that_resends_a_one_time_body_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def moved(request: httpx.Request, body: bytes) -> httpx.Response:
        if is_token_request(request):
            return httpx.Response(200, json=seed_token_body("clazar", "token-1-" + "x" * 20))
        if request.url.path.endswith("/old"):
            return httpx.Response(307, headers={"Location": "/new"})
        return httpx.Response(200, json={})

    set_connection(monkeypatch, "clazar")
    hook = hook_for("clazar", transport=Streaming(moved), retry_policy=RetryPolicy(max_attempts=1))
    with pytest.raises(VendorApiError) as failed:
        hook.request("POST", "/old", content=chunks())
    assert "needed its body a second time (a redirect with 307 or 308" in str(failed.value) and "'clazar'" in str(failed.value)


def test_a_dpop_nonce_demand_to_a_one_time_body_keeps_the_token_and_the_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
    from tests.unit.test_auth_dpop import NonceServer, connection

    connection(monkeypatch)
    server = NonceServer()
    calls: list[bytes] = []

    def answer(request: httpx.Request, body: bytes) -> httpx.Response:
        if request.url.host == "api.example.com":
            calls.append(body)
        return server(request)

    hook = OAuth2Hook("dpop_test", transport=Streaming(answer), retry_policy=RetryPolicy(max_attempts=1))
    hook.request("POST", "/items", content=b"first")  # a token, and the API's nonce learnt
    server.api_nonce = "an-rotated-unannounced"  # the API moves on to a nonce the client has not seen
    with pytest.raises(VendorApiError) as refused:
        hook.request("POST", "/items", content=chunks())
    said = str(refused.value)
    assert refused.value.status == 401 and "asked for a DPoP nonce" in said and "the next call carries it" in said
    assert calls[-1] == PAYLOAD and calls.count(PAYLOAD) == 1  # sent once, whole
    hook.request("POST", "/items", content=b"next")
    assert server.tokens == 1  # the token was not dropped: a nonce demand says nothing against it
    assert calls[-1] == b"next" and len(calls) == 4  # first (challenged once, then resent), the stream, next: no challenge
