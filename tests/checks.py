"""Checks that sensors in the test DAGs import by dotted path (a deferred wait rebuilds its check)."""

from __future__ import annotations

from typing import Any


def items_ready(answer: Any) -> bool:
    """The generic API's item list has its 230 items."""
    return isinstance(answer, dict) and answer.get("total") == 230
