"""What a sensor waits for, declared once for the poking sensor and the trigger alike: a JSON path of
the answer and the value expected there, or a callable on the answer (an importable dotted path when
the wait is deferred, since the triggerer rebuilds it from the metadata database)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_vendorauth.pagination.strategies import dig


@dataclass(frozen=True)
class AnswerCheck:
    json_path: str | None = None
    expected: Any = None
    #: A callable taking the JSON body, or its dotted path (``my_dags.checks.ready``).
    callable: Callable[[Any], bool] | str | None = None

    def __post_init__(self) -> None:
        if (self.json_path is None) == (self.callable is None):
            raise ValueError("give exactly one of response_check (a callable or its dotted path) or json_path")

    @property
    def serializable(self) -> bool:
        return self.callable is None or isinstance(self.callable, str)

    def to_json(self) -> dict[str, Any]:
        if not self.serializable:
            raise ValueError(
                "a deferred wait runs in the triggerer, which rebuilds its check from the database: give "
                "response_check as a dotted path ('my_dags.checks.ready') or use json_path and expected"
            )
        return {"json_path": self.json_path, "expected": self.expected, "callable": self.callable}

    def passes(self, body: Any) -> bool:
        if self.json_path is not None:
            try:
                return bool(dig(body, self.json_path) == self.expected)
            except KeyError:
                return False
        check = self.callable
        if isinstance(check, str):
            module, _, name = check.rpartition(".")
            check = getattr(importlib.import_module(module), name)
        assert callable(check)
        return bool(check(body))

    def describe(self) -> str:
        if self.json_path is not None:
            return f"{self.json_path} == {self.expected!r}"
        return f"{getattr(self.callable, '__name__', self.callable)}(answer)"
