"""JSON for the hot path (every page read, every record written), with orjson.

Measured (benchmarks/scan.py, README): parsing a 100-record page and writing it as JSON Lines takes
1.0 ms with the standard library and 0.16 ms with orjson, on a path that runs once per page. The
standard library stays the fallback, so a missing wheel costs speed, never correctness.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the fallback is for odd platforms
    orjson = None  # type: ignore[assignment]


def loads(data: bytes | str) -> Any:
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data)


def dumps_lines(records: list[Any]) -> bytes:
    """Records as JSON Lines: one compact JSON document per line, UTF-8."""
    if orjson is not None:
        return b"".join(orjson.dumps(r) + b"\n" for r in records)
    return b"".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for r in records)
