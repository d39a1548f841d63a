"""Stream records to JSON Lines, crash-safely, and resume only from what the file really holds.

Records go to ``<path>.partial`` as pages arrive. A :class:`Checkpoint` says what the output holds at a
page boundary: its byte length and a digest of its last bytes, the records and pages, the request of the
next page. A retry trusts the file, not the checkpoint alone: the partial output must be there, at least
that long, and end with those bytes; then it is cut back to the checkpoint's length and the scan goes
on from the next page (no duplicate, no gap). A partial output that is missing (a retry on another
machine) or different starts the scan over cleanly, from zero, and says why: a retry never fails because
of an old checkpoint. Object storage (``s3://``, ``gs://``, fsspec's ``memory://``...) resumes by
appending where the output is exactly the checkpoint's length and the filesystem can append, by copying
the checkpointed bytes into a fresh object where it is longer, and otherwise starts over. The file gets
its final name only when the scan completes; a failure leaves ``.partial`` and says so.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airflow_vendorauth.jsonlib import dumps_lines
from airflow_vendorauth.lineage.datasets import without_secrets
from airflow_vendorauth.pagination.strategies import PageRequest

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

#: Bytes of the output's end that a checkpoint fingerprints (the last page or two of records).
TAIL = 4096
#: Chunk size when object storage that cannot append gets its checkpointed bytes copied.
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    """Progress that has been durably written: where a retry resumes."""

    bytes_written: int
    records: int
    pages: int
    next_request: PageRequest | None
    #: SHA-256 of the output's last :data:`TAIL` bytes (up to ``bytes_written``); None in the checkpoints
    #: of versions before it, which are not trusted.
    tail_sha256: str | None = None
    #: The records the API announced for the whole scan (checked at its end), when it announced any.
    total: int | None = None
    #: The identity of the scan it belongs to (``operators/scan_identity.py``); None in the checkpoints of
    #: versions before it, which a scan sets aside.
    scan: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes_written": self.bytes_written,
            "records": self.records,
            "pages": self.pages,
            "next_request": self.next_request.to_json() if self.next_request else None,
            "tail_sha256": self.tail_sha256,
            "total": self.total,
            "scan": dict(self.scan) if self.scan is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        """The checkpoint, or ValueError when it is not one (a retry then starts over)."""
        try:
            nxt = data.get("next_request")
            return cls(
                bytes_written=int(data["bytes_written"]),
                records=int(data["records"]),
                pages=int(data["pages"]),
                next_request=PageRequest.from_json(nxt) if nxt else None,
                tail_sha256=data.get("tail_sha256"),
                total=int(data["total"]) if data.get("total") is not None else None,
                scan={str(k): str(v) for k, v in data["scan"].items()} if data.get("scan") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a checkpoint ({type(exc).__name__}: {exc})") from None


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def remote_filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem and path of an object-storage URL: Airflow's (``ObjectStoragePath``, with the
    connections of its providers) where Airflow knows the scheme, else fsspec's own (``memory://``)."""
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(url)
    try:
        return path.fs, path.path
    except ValueError:  # "No filesystem registered for scheme ...": not one of Airflow's
        import fsspec

        fs, fspath = fsspec.core.url_to_fs(url)
        return fs, fspath


def tail_digest(tail: bytes) -> str:
    return hashlib.sha256(tail).hexdigest()


class JsonLinesSink:
    """Append-only JSON Lines output with a ``.partial`` twin until :meth:`finish`.

    After construction, :attr:`resumed` says whether the checkpoint was trusted, and :attr:`restart_reason`
    why not (None when there was nothing to resume)."""

    def __init__(
        self, path: str, resume_from: Checkpoint | None = None, scan: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        #: The identity of the scan written here, carried by its checkpoints.
        self.scan = scan
        self.partial = path + ".partial"
        self.records = self.pages = self.position = 0
        self._tail = b""
        self.resumed = False
        self.restart_reason: str | None = None
        self._remote = is_remote(path)
        self._fs: AbstractFileSystem | None = None
        self._file: IO[bytes] = self._open_remote(resume_from) if self._remote else self._open_local(resume_from)
        if self.resumed and resume_from is not None:
            self.records, self.pages, self.position = resume_from.records, resume_from.pages, resume_from.bytes_written

    # ---- opening: trust the file, not the checkpoint alone --------------------------------------------------

    def _open_local(self, resume_from: Checkpoint | None) -> IO[bytes]:
        local = Path(self.path.removeprefix("file://"))
        local.parent.mkdir(parents=True, exist_ok=True)
        self.partial = str(local) + ".partial"
        if resume_from is not None:
            try:
                handle = open(self.partial, "r+b")
            except FileNotFoundError:
                self.restart_reason = f"{without_secrets(self.partial)} is not there (another machine, or cleaned up)"
            else:
                size = os.fstat(handle.fileno()).st_size
                self.restart_reason = self._check(resume_from, size, lambda start, n: os.pread(handle.fileno(), n, start))
                if self.restart_reason is None:
                    handle.truncate(resume_from.bytes_written)  # what came after the commit is fetched again
                    handle.seek(resume_from.bytes_written)
                    self.resumed = True
                    return handle
                handle.close()
        return open(self.partial, "wb")

    def _open_remote(self, resume_from: Checkpoint | None) -> IO[bytes]:
        fs, partial = remote_filesystem(self.partial)
        self._fs = fs
        if resume_from is not None:
            self.restart_reason = self._resume_remote(fs, partial, resume_from)
            if self.restart_reason is None:
                return self._file
        return fs.open(partial, "wb")  # type: ignore[no-any-return]

    def _resume_remote(self, fs: AbstractFileSystem, partial: str, resume_from: Checkpoint) -> str | None:
        """Set ``self._file`` to the resumed output and return None, or return why it cannot resume."""
        if not fs.exists(partial):
            return f"{without_secrets(self.partial)} is not there (another machine, or an object never completed)"
        size = int(fs.size(partial))
        with fs.open(partial, "rb") as old:

            def read(start: int, n: int) -> bytes:
                old.seek(start)
                return old.read(n)  # type: ignore[no-any-return]

            why = self._check(resume_from, size, read)
        if why is not None:
            return why
        if size == resume_from.bytes_written:
            try:
                self._file = fs.open(partial, "ab")
                self.resumed = True
                return None
            except (NotImplementedError, ValueError, OSError):
                pass  # a store that cannot append: copy the checkpointed bytes into a fresh object
        moved = partial + ".resuming"
        fs.mv(partial, moved)
        self._file = fs.open(partial, "wb")
        with fs.open(moved, "rb") as old:
            left = resume_from.bytes_written
            while left > 0:
                chunk = old.read(min(COPY_CHUNK, left))
                if not chunk:
                    break
                self._file.write(chunk)
                left -= len(chunk)
        fs.rm(moved)
        self.resumed = True
        return None

    def _check(self, point: Checkpoint, size: int, read: Any) -> str | None:
        """Why the output does not hold what ``point`` says (None when it does); keeps its tail."""
        if point.tail_sha256 is None:
            return "the checkpoint was written by an older version and does not describe the file"
        if size < point.bytes_written:
            return f"{without_secrets(self.partial)} holds {size} bytes, fewer than the {point.bytes_written} the checkpoint covers"
        start = max(0, point.bytes_written - TAIL)
        tail = read(start, point.bytes_written - start)
        if tail_digest(tail) != point.tail_sha256:
            return f"{without_secrets(self.partial)} differs from what the checkpoint describes (its last bytes do not match)"
        self._tail = tail
        return None

    # ---- writing ----------------------------------------------------------------------------------------------

    def write_page(self, records: list[Any]) -> None:
        if records:
            chunk = dumps_lines(records)
            self._file.write(chunk)
            self.position += len(chunk)
            self._tail = (self._tail + chunk[-TAIL:])[-TAIL:]
        self.records += len(records)
        self.pages += 1

    def checkpoint(
        self, next_request: PageRequest | None, *, durable: bool = True, total: int | None = None
    ) -> Checkpoint:
        """Describe what was written (flushed to the operating system); with ``durable``, first make it
        survive a crash (:meth:`sync`), as a checkpoint committed to task_state_store must."""
        self._file.flush()
        if durable:
            self.sync()
        return Checkpoint(
            self.position, self.records, self.pages, next_request, tail_digest(self._tail), total, self.scan
        )

    def sync(self) -> None:
        """Make what was flushed survive a crash of this machine (fsync; object storage: nothing to do,
        a checkpoint that claims more than the store kept is refused on resume). Safe from another thread."""
        if not self._remote:
            os.fsync(self._file.fileno())

    def finish(self) -> str:
        self._file.close()
        if self._fs is not None:
            _, partial = remote_filesystem(self.partial)
            _, final = remote_filesystem(self.path)
            self._fs.mv(partial, final)
            return self.path
        final = self.partial.removesuffix(".partial")
        os.replace(self.partial, final)
        return final

    def abort(self) -> None:
        self._file.close()

    def discard(self) -> None:
        """Close and remove the partial output (a scan that wrote nothing leaves no empty file behind)."""
        self._file.close()
        try:
            if self._fs is not None:
                self._fs.rm(remote_filesystem(self.partial)[1])
            else:
                os.remove(self.partial)
        except (FileNotFoundError, OSError):  # nothing to remove: nothing left behind either way
            pass
