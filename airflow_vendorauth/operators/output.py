"""Stream records to JSON Lines, crash-safely.

Records go to ``<path>.partial`` as pages arrive; after each page the file is flushed and a
checkpoint (bytes written, records, pages, the request of the next page) can be committed to Airflow's
``task_state_store``. A retried task truncates the partial file to the last committed size and goes on
from the next page, so the output has no duplicate and no gap. The file gets its final name only when
the scan completes; a failure leaves ``.partial`` and says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from airflow.sdk import ObjectStoragePath

from airflow_vendorauth.jsonlib import dumps_lines
from airflow_vendorauth.pagination.strategies import PageRequest


@dataclass(frozen=True)
class Checkpoint:
    """Progress that has been durably written: where a retry resumes."""

    bytes_written: int
    records: int
    pages: int
    next_request: PageRequest | None

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes_written": self.bytes_written,
            "records": self.records,
            "pages": self.pages,
            "next_request": self.next_request.to_json() if self.next_request else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        nxt = data.get("next_request")
        return cls(
            bytes_written=int(data["bytes_written"]),
            records=int(data["records"]),
            pages=int(data["pages"]),
            next_request=PageRequest.from_json(nxt) if nxt else None,
        )


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


class JsonLinesSink:
    """Append-only JSON Lines output with a ``.partial`` twin until :meth:`finish`."""

    def __init__(self, path: str, resume_from: Checkpoint | None = None) -> None:
        self.path = path
        self.partial = path + ".partial"
        self.records = resume_from.records if resume_from else 0
        self.pages = resume_from.pages if resume_from else 0
        self._remote = is_remote(path)
        self._file: IO[bytes] = self._open(resume_from)

    def _open(self, resume_from: Checkpoint | None) -> IO[bytes]:
        if self._remote:
            if resume_from is not None:
                raise ValueError("resuming is only supported for local output paths")
            return ObjectStoragePath(self.partial).open("wb")  # type: ignore[no-any-return]
        local = Path(self.path.removeprefix("file://"))
        local.parent.mkdir(parents=True, exist_ok=True)
        self.partial = str(local) + ".partial"
        if resume_from is not None and os.path.exists(self.partial):
            handle = open(self.partial, "r+b")
            handle.truncate(resume_from.bytes_written)
            handle.seek(resume_from.bytes_written)
            return handle
        return open(self.partial, "wb")

    def write_page(self, records: list[Any]) -> None:
        if records:
            self._file.write(dumps_lines(records))
        self.records += len(records)
        self.pages += 1

    def checkpoint(self, next_request: PageRequest | None, *, durable: bool = True) -> Checkpoint:
        """Describe what was written; with ``durable``, first make it survive a crash (fsync), as a
        checkpoint committed to task_state_store must."""
        self._file.flush()
        if durable and not self._remote:
            os.fsync(self._file.fileno())
        return Checkpoint(self._file.tell(), self.records, self.pages, next_request)

    def finish(self) -> str:
        self._file.close()
        if self._remote:
            ObjectStoragePath(self.partial).rename(ObjectStoragePath(self.path))
            return self.path
        final = self.partial.removesuffix(".partial")
        os.replace(self.partial, final)
        return final

    def abort(self) -> None:
        self._file.close()
