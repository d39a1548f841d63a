"""The declared quota of a credential: ``rate_limit`` (one window or a list, all enforced) and
``max_in_flight`` (requests at once across the cluster)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

#: The windows a rate may name, in seconds.
UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_ABBREVIATIONS = {"s": "second", "sec": "second", "m": "minute", "min": "minute", "h": "hour", "d": "day"}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\w+?)s?\s*$", re.IGNORECASE)
#: The most a rate may allow in its window (a typo guard; no vendor allows more per credential).
MAX_COUNT = 10_000_000
EXAMPLE = '25/second, or a list: ["25/second", "5000/hour"]'


class RateLimitInvalid(ValueError):
    """``rate_limit`` cannot be read: ``problem`` and ``fix`` are worded for the connection's error."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``unit`` (second, minute, hour, day)."""

    count: int
    unit: str

    @property
    def period(self) -> float:
        return UNITS[self.unit]

    @property
    def name(self) -> str:
        return f"{self.count}/{self.unit}"

    @property
    def interval(self) -> float:
        """Seconds between two requests at the steady rate (the count spread evenly over the window)."""
        return self.period / self.count

    def scaled(self, share: float) -> Rate:
        """This rate's ``share`` (each process's when the shared store is gone), at least 1."""
        return Rate(max(1, int(self.count * share)), self.unit)

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.match(text)
        if not match:
            raise RateLimitInvalid(f"has {text!r}, not a rate", f"write count/unit, e.g. {EXAMPLE}")
        count, unit = int(match.group(1)), match.group(2).lower()
        unit = _ABBREVIATIONS.get(unit, unit)
        if unit not in UNITS:
            raise RateLimitInvalid(
                f"has {text!r}: the unit {match.group(2)!r} is not one of second, minute, hour, day",
                f"write count/unit, e.g. {EXAMPLE}",
            )
        if not 1 <= count <= MAX_COUNT:
            raise RateLimitInvalid(f"has {text!r}: a count out of range", f"give 1 to {MAX_COUNT} requests per window")
        return cls(count, unit)


def parse_rate_limit(value: Any) -> tuple[Rate, ...]:
    """The rates of ``rate_limit``: a string (``"25/second"``, ``"25/second, 5000/hour"``, a JSON list as
    the form's text field gives it) or a list of strings. Every rate is enforced."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise RateLimitInvalid("is not a valid JSON list", f"write e.g. {EXAMPLE}") from None
        else:
            value = [part for part in text.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise RateLimitInvalid(f"is {value!r}, neither a rate nor a list of rates", f"write e.g. {EXAMPLE}")
    rates: list[Rate] = []
    for item in value:
        if not isinstance(item, str):
            raise RateLimitInvalid(f"has {item!r}, not a rate written as text", f"write e.g. {EXAMPLE}")
        rate = Rate.parse(item)
        if any(r.unit == rate.unit for r in rates):
            raise RateLimitInvalid(f"names the {rate.unit} window twice", "give each window once, e.g. " + EXAMPLE)
        rates.append(rate)
    return tuple(sorted(rates, key=lambda r: r.period))


@dataclass(frozen=True)
class QuotaSpec:
    """What a connection declares for its credential, and how long a request may wait for a permit."""

    rates: tuple[Rate, ...] = ()
    max_in_flight: int | None = None
    #: A permit further away than this fails the call (a daily quota spent), naming the quota and its reset.
    max_wait: float = 60.0
    #: Token requests take a permit too (vendors that count them against the quota).
    token_requests: bool = False

    def scaled(self, share: float) -> QuotaSpec:
        return QuotaSpec(
            tuple(r.scaled(share) for r in self.rates),
            None if self.max_in_flight is None else max(1, int(self.max_in_flight * share)),
            self.max_wait,
            self.token_requests,
        )

    def describe(self) -> str:
        parts = [r.name for r in self.rates]
        if self.max_in_flight:
            parts.append(f"{self.max_in_flight} at once")
        return ", ".join(parts) or "none declared"
