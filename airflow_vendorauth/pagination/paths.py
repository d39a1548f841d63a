"""Where a value sits in a JSON answer: the rule of every ``*_path`` of the paging strategies
(``records_path``, ``next_path``, ``total_path``, ``next_cursor_path``) and of the sensor's ``json_path``.

One rule, because real keys hold dots (Microsoft Graph's ``@odata.nextLink``, OData's ``@odata.count``):

- a **string** names keys from the top, joined by dots (``links.next``; ``data.0`` is a list's first
  item), and at each level a key that holds dots is matched whole before the path is split there: the
  longest key of the object that the rest of the path starts with wins. So ``"@odata.nextLink"`` names
  Graph's key as written, and ``"links.@odata.nextLink"`` the same key inside ``links``;
- a **list** names each key as is, nothing split (``["@odata.nextLink"]``, ``["links", "next.href"]``),
  for the rare answer that holds both ``{"a.b": ...}`` and ``{"a": {"b": ...}}`` and means the second.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

#: A path as the strategies and the ``pagination`` extra take it (see the module docstring).
KeyPath = str | Sequence[str | int]

_MISSING = object()


def dig(body: Any, path: KeyPath | None) -> Any:
    """``dig({"a": {"b": 1}}, "a.b") == 1``, ``dig({"a": [5]}, "a.0") == 5``,
    ``dig({"@odata.nextLink": "u"}, "@odata.nextLink") == "u"``; an empty path is the body itself;
    KeyError if absent."""
    if not path:
        return body
    split = isinstance(path, str)
    parts = path.split(".") if isinstance(path, str) else [str(part) for part in path]
    found = _walk(body, parts, split)
    if found is _MISSING:
        raise KeyError(show_path(path))
    return found


def _walk(value: Any, parts: list[str], split: bool) -> Any:
    if not parts:
        return value
    if isinstance(value, dict):
        for n in range(len(parts), 0, -1) if split else (1,):  # the longest key that matches, first
            key = ".".join(parts[:n])
            if key in value and (found := _walk(value[key], parts[n:], split)) is not _MISSING:
                return found
        return _MISSING
    if isinstance(value, list) and parts[0].isdigit() and int(parts[0]) < len(value):
        return _walk(value[int(parts[0])], parts[1:], split)
    return _MISSING


def show_path(path: KeyPath | None) -> str:
    """A path as a user would write it (for messages and logs): ``'links.next'``, ``["@odata.nextLink"]``."""
    return repr(path) if isinstance(path, str) or path is None else json.dumps(list(path))


def check_path(name: str, path: Any) -> None:
    """ValueError unless ``path`` is a path (a string, or a list of keys): what the extra may give."""
    if path is None or isinstance(path, str):
        return
    if isinstance(path, list | tuple) and all(isinstance(part, str | int) for part in path):
        return
    raise ValueError(f"gives {name} as {json.dumps(path, default=str)}: a path is a string (\"links.next\") or a list of keys ([\"@odata.nextLink\"])")
