"""What scan a checkpoint belongs to, so a task never resumes another scan's output.

Airflow keeps ``task_state_store`` rows when a task is cleared: a task whose endpoint, filter or paging
was changed and then cleared finds the checkpoint its earlier scan left, under the same key. Resumed, it
would append the new scan's pages to the old one's records. So each checkpoint carries the identity of
its scan, and a checkpoint whose identity differs from the scan about to run (or that carries none, from
a version before this one) is set aside: the scan starts over, its old partial output discarded, and the
log says which parts differ.

The identity holds what decides the records of the output and where they go: the connection, the
method (pages are always fetched with GET), the endpoint, the query parameters (the endpoint's own query
string too), the headers, the paging (the strategy given, or the connection's ``pagination`` extra; and
the caps ``max_pages`` and ``max_records``: a smaller cap must not resume past it) and the output.
Concurrency is not part of it: it changes how fast the pages come, not which. The connection id, the
method and the endpoint's path are kept as they are (the log shows them); the rest is kept as a short
SHA-256 digest, since query parameters, headers and signed output URLs may hold secrets, and
``task_state_store`` is the metadata database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

#: The parts of an identity kept in clear (shown in the log line); the others are digests.
SHOWN = ("connection", "method", "endpoint")
#: The hex digits of a digest kept: enough to tell two values apart, too few to be worth guessing from.
DIGEST_CHARS = 16


def digest(value: Any) -> str:
    """A short digest of a value: JSON with its keys sorted, anything else by its ``str()`` (two dates
    differ; an object whose text changes per process makes every try start over, never resume wrongly)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def endpoint_path(endpoint: str) -> str:
    """The endpoint without user information, query or fragment (those go into the digests): what a log
    line or a checkpoint may show."""
    parts = urlsplit(endpoint)
    if not parts.scheme:
        return parts.path
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _described(pagination: Any) -> Any:
    """A pagination strategy as plain data: its class and its settings."""
    if pagination is None:
        return None
    name = type(pagination).__qualname__
    if dataclasses.is_dataclass(pagination) and not isinstance(pagination, type):
        return [name, dataclasses.asdict(pagination)]
    return [name, dict(vars(pagination))]


def scan_identity(
    *,
    connection: str,
    endpoint: str,
    output: str,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    pagination: Any = None,
    connection_pagination: Any = None,
    max_pages: int | None = None,
    max_records: int | None = None,
) -> dict[str, str]:
    """The identity of a scan of ``endpoint`` (fetched with GET) to ``output``."""
    parts = urlsplit(endpoint)
    return {
        "connection": connection,
        "method": "GET",
        "endpoint": endpoint_path(endpoint),
        "params": digest({"query": parts.query, "fragment": parts.fragment, "params": dict(params or {})}),
        "headers": digest(dict(headers or {})),
        "paging": digest(
            {
                "strategy": _described(pagination),
                "connection": connection_pagination,
                "max_pages": max_pages,
                "max_records": max_records,
            }
        ),
        "output": digest(output),
    }


def differences(saved: Mapping[str, Any] | None, current: Mapping[str, str]) -> list[str]:
    """What differs between a saved checkpoint's identity and the current scan's, in words (none: the
    same scan). A checkpoint without an identity was written by a version before identities."""
    if not saved:
        return ["the checkpoint records no scan identity (written by an earlier version)"]
    said = []
    for name, now in current.items():
        before = saved.get(name)
        if before == now:
            continue
        if name in SHOWN:
            said.append(f"{name} was {before!r}, now {now!r}")
        else:
            said.append(f"the {name} changed (digest {before or 'none'} -> {now})")
    return said
