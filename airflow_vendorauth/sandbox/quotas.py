"""Per-credential quotas of the sandbox's APIs, as SaaS APIs enforce them: rates, requests at once,
the IETF ``RateLimit-Policy``/``RateLimit`` headers (or ``X-RateLimit-*``) on every answer, and a 429 with
``Retry-After`` past the quota, counted in the stats (``quota_429``, ``quota_429_rate``,
``quota_429_at_once``).

A rule (``POST /_admin/quotas``, ``--quota JSON``, ``Sandbox.add_quota(...)``)::

    {"vendor": "oauth2", "rates": ["25/second", "5000/day"], "max_in_flight": 8, "headers": "ietf"}

``route``: a glob of the API path after the vendor prefix (as fault rules); token requests count only
with ``token_requests``. ``headers``: ``ietf`` (default), ``x`` (``X-RateLimit-Limit/Remaining/Reset``,
reset in seconds) or ``none`` (a 429 and its ``Retry-After`` only). Each credential (the client a token
was issued to) has its own quota under each rule.

``algorithm``: how a rate is counted. ``gcra`` (default): a burst of the whole count, then a steady pace,
which lets up to about twice the count through in one window (the burst, then the pace). ``sliding``: an
exact sliding log, never more than the count in any window of the rate's length, the strictest a vendor
counts (a fixed window allows less than GCRA and more than this). Use ``sliding`` to check that a client
never sends more than the count in any window.
"""

from __future__ import annotations

import fnmatch
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from airflow_vendorauth.quota.spec import Rate, parse_rate_limit


@dataclass
class QuotaRule:
    vendor: str = "*"
    route: str = "*"
    rates: list[str] = field(default_factory=list)
    max_in_flight: int | None = None
    headers: str = "ietf"
    token_requests: bool = False
    algorithm: str = "gcra"
    #: Answers served and refused under this rule (its counters).
    served: int = 0
    refused_rate: int = 0
    refused_at_once: int = 0
    peak_in_flight: int = 0
    #: When each refusal happened, in seconds since the rule admitted its first request.
    refused_at: list[float] = field(default_factory=list)
    #: The same refusals in seconds since the epoch (to set beside what else happened meanwhile).
    refused_epoch: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rates: tuple[Rate, ...] = parse_rate_limit(self.rates) if self.rates else ()
        self._tat: dict[tuple[str, str], float] = {}
        self._log: dict[tuple[str, str], deque[float]] = {}  # admissions within the window, for ``sliding``
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._first: float | None = None
        if self.headers not in ("ietf", "x", "none"):
            raise ValueError(f"headers is {self.headers!r}: use ietf, x or none")
        if self.algorithm not in ("gcra", "sliding"):
            raise ValueError(f"algorithm is {self.algorithm!r}: use gcra or sliding")

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def matches(self, vendor: str, route: str, is_token: bool) -> bool:
        if self.vendor not in ("*", vendor):
            return False
        return self.token_requests if is_token else fnmatch.fnmatch(route, self.route)

    def admit(self, credential: str, now: float | None = None) -> tuple[bool, str, float, list[tuple[bytes, bytes]]]:
        """(admitted, why refused, Retry-After seconds, headers to answer with). An admitted request holds
        a slot of ``max_in_flight`` until :meth:`done`."""
        now = time.monotonic() if now is None else now
        with self._lock:
            running = self._in_flight.get(credential, 0)
            if self.max_in_flight is not None and running >= self.max_in_flight:
                self.refused_at_once += 1
                self._refused(now)
                return False, "at_once", 1.0, self._headers(credential, now)
            worst = 0.0
            arrivals = {}
            for rate in self._rates:
                if self.algorithm == "sliding":
                    log = self._window(credential, rate, now)
                    wait = log[0] + rate.period - now if len(log) >= rate.count else 0.0
                else:
                    tat = max(self._tat.get((credential, rate.name), 0.0), now) + rate.interval
                    wait = tat - rate.count * rate.interval - now
                    arrivals[rate.name] = tat
                worst = max(worst, wait)
            if worst > 0:
                self.refused_rate += 1
                self._refused(now)
                return False, "rate", worst, self._headers(credential, now)
            for name, tat in arrivals.items():
                self._tat[(credential, name)] = tat
            if self.algorithm == "sliding":
                for rate in self._rates:
                    self._window(credential, rate, now).append(now)
            self._in_flight[credential] = running + 1
            self.peak_in_flight = max(self.peak_in_flight, running + 1)
            self.served += 1
            self._first = now if self._first is None else self._first
            return True, "", 0.0, self._headers(credential, now)

    def _window(self, credential: str, rate: Rate, now: float) -> deque[float]:
        """The admissions of the last ``rate.period`` seconds (``sliding``), the older ones dropped."""
        log = self._log.setdefault((credential, rate.name), deque())
        while log and log[0] <= now - rate.period:
            log.popleft()
        return log

    def _refused(self, now: float) -> None:
        self.refused_at.append(round(now - (self._first if self._first is not None else now), 3))
        self.refused_epoch.append(round(time.time(), 3))

    def done(self, credential: str) -> None:
        with self._lock:
            self._in_flight[credential] = max(0, self._in_flight.get(credential, 0) - 1)

    def _headers(self, credential: str, now: float) -> list[tuple[bytes, bytes]]:
        """The tightest window: what remains of it and when it is whole again."""
        if self.headers == "none" or not self._rates:
            return []
        tightest: tuple[int, Rate, float, float] | None = None
        for rate in self._rates:
            if self.algorithm == "sliding":
                log = self._window(credential, rate, now)
                remaining = max(0, rate.count - len(log))
                full_in = log[-1] + rate.period - now if log else 0.0  # when every admission left the window
                room_in = log[0] + rate.period - now if log else 0.0  # when the oldest leaves: room for one
            else:
                tat = max(self._tat.get((credential, rate.name), 0.0), now)
                remaining = max(0, math.floor((rate.count * rate.interval - (tat - now)) / rate.interval + 1e-9))
                full_in = max(0.0, tat - now)
                room_in = rate.interval  # GCRA's next unit
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, rate, full_in, room_in)
        assert tightest is not None
        remaining, rate, full_in, room_in = tightest
        reset = max(1, math.ceil(room_in)) if remaining == 0 else math.ceil(full_in)
        if self.headers == "x":
            values = {"X-RateLimit-Limit": rate.count, "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset}
            return [(k.encode(), str(v).encode()) for k, v in values.items()]
        policy = ", ".join(f"{r.count};w={int(r.period)}" for r in self._rates)
        return [
            (b"ratelimit-policy", policy.encode()),
            (b"ratelimit", f"limit={rate.count}, remaining={remaining}, reset={reset}".encode()),
        ]
