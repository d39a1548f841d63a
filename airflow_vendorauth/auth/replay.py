"""Whether a request's body can be sent a second time (the resend after a 401 or with a DPoP nonce, a
retry), and how: decided before the first send, since sending is what uses a stream up.

What httpx does with each kind of body, which sets the rules here:

- bytes, text, JSON and urlencoded forms are kept in memory (``ByteStream``): sent any number of times;
- multipart forms (``files=``) seek each file to 0 before sending it: again, if every file can seek;
- any other iterable is streamed once (``IteratorByteStream``): a generator raises ``StreamConsumed`` on
  the second send; a file object is read from where it stands, so after the first send, from its end (an
  empty body under the first send's ``Content-Length``); a list of chunks simply iterates again.

So a file that can seek is rewound to where it stood before the first send, a list or tuple of chunks is
replayed as it is, and a generator, an iterator, a file that cannot seek, an async stream or any other
iterable is not replayable: the caller then does not send it again (and, for a 401, fetches no token it
cannot use).
A body that something read into memory on the way (``request.read()``) is replayable whatever it was.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import httpx

#: The source of httpx's streamed request bodies (a private attribute, as :mod:`..client.lean` reads one:
#: httpx is pinned below 1.0); without it a body counts as not replayable.
_SOURCE = "_stream"

#: What an error says of a body that cannot be sent again.
ONE_TIME_BODY = (
    "its body is a stream that can be read only once (a generator, an iterator or a file that cannot seek); "
    "send it as bytes or as a file that can seek to have it sent again"
)


class BodyReplay:
    """One body: whether it can be sent again, and the rewind that makes it so."""

    def __init__(self, replayable: bool, rewind: Callable[[], object] | None = None) -> None:
        self._replayable = replayable
        self._rewind = rewind
        self._request: httpx.Request | None = None

    @classmethod
    def of_request(cls, request: httpx.Request) -> BodyReplay:
        """The body of a request about to be sent (the auth flow's view)."""
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):
            replay = cls(True)
        elif (fields := getattr(stream, "fields", None)) is not None:  # multipart: httpx seeks each file to 0
            replay = cls(all(_seekable(getattr(f, "file", b"")) for f in fields))
        elif (source := getattr(stream, _SOURCE, None)) is not None:
            replay = cls.of_source(source)
        else:
            replay = cls(False)
        replay._request = request
        return replay

    @classmethod
    def of_call(cls, kwargs: Mapping[str, Any]) -> BodyReplay:
        """The body of a call's keyword arguments (``content``, ``data``, ``files``, ``json``), before its
        first attempt: what each retry sends again."""
        content = kwargs.get("content")
        data = kwargs.get("data")
        if content is None and data is not None and not isinstance(data, Mapping):
            content = data  # httpx's deprecated form of content
        files = kwargs.get("files") or {}
        entries = files.values() if isinstance(files, Mapping) else (entry for _, entry in files)
        file_objects = [entry[1] if isinstance(entry, tuple) else entry for entry in entries]
        if not all(_seekable(f) for f in file_objects):
            return cls(False)
        return cls(True) if content is None else cls.of_source(content)

    @classmethod
    def of_source(cls, source: object) -> BodyReplay:
        """What httpx streams a body from (``content=``): bytes and text, a list or tuple of chunks, a file
        that can seek (rewound to where it stands now). Anything else may read on from where the first send
        left it: a generator, an iterator, another iterable, an async stream (aiofiles and anyio files
        iterate from their position, and seek only by awaiting)."""
        if isinstance(source, (bytes, str, list, tuple)):
            return cls(True)
        if any(hasattr(source, name) for name in ("__aiter__", "__anext__", "aread")):
            return cls(False)
        if hasattr(source, "read") and _seekable(source):
            start = source.tell()  # type: ignore[attr-defined]
            return cls(True, lambda: source.seek(start))  # type: ignore[attr-defined]
        return cls(False)

    def _in_memory(self) -> bool:
        return self._request is not None and isinstance(self._request.stream, httpx.ByteStream)

    @property
    def possible(self) -> bool:
        """Whether the body can be sent again now."""
        return self._replayable or self._in_memory()

    def rewind(self) -> None:
        """Make the next send carry the whole body again (a file back to where it stood)."""
        if self._rewind is not None and not self._in_memory():
            self._rewind()


def _seekable(source: object) -> bool:
    if isinstance(source, (bytes, str)):
        return True
    try:
        return bool(source.seekable())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, io.UnsupportedOperation):  # no such method, or a closed file
        return False
