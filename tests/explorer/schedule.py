"""A schedule of compound faults, drawn from a seed: the same seed gives the same schedule, step for step.

A schedule fixes the world (token cache backend, the server's reuse interval, task processes and their
styles, token lifetime, timeouts, scans) and a list of steps at offsets from its start: Redis killed and
restarted empty, a lock's lease gone, SIGTERM or SIGKILL of a task process at any moment or while a refresh
token is in flight, token endpoint faults (slow, 5xx, a timeout after the server rotated, an answer lost on
the way back), Test pressed from a process that does not share the workers' file cache, and scans stopped
mid-page or cleared with changed parameters; and whether the connection declares the API's quota, which
the sandbox then enforces. What the processes' threads do between two steps is up to the
machine: a replay runs the same steps at the same offsets, not the same interleaving.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

#: Token endpoint faults: (sandbox fault rule, whether it can destroy the only copy of a successor).
TOKEN_FAULTS: dict[str, tuple[dict[str, Any], bool]] = {
    "slow": ({"latency_ms": 400}, False),
    "503": ({"rate_429": 1.0, "throttle_status": 503, "retry_after": 0}, False),
    "500": ({"rate_5xx": 1.0}, True),  # 500, 502 or 503 drawn by the sandbox: 500/502 leave a spend in doubt
    "lost-drop": ({"rate_lost": 1.0, "lost_as": "drop"}, True),
    "lost-502": ({"rate_lost": 1.0, "lost_as": "502"}, True),
    # served (rotated), its answer held past the client's timeout
    "timeout": ({"rate_lost": 1.0, "lost_as": "timeout", "slow_seconds": 2.5}, True),
    # no answer past the client's timeout, never served: the client cannot tell it from the one above
    "stall": ({"rate_slow": 1.0, "slow_seconds": 2.5}, True),
}


@dataclass(frozen=True)
class Step:
    """One event of a schedule, ``at`` seconds after its start."""

    at: float
    kind: str
    worker: int = 0
    #: ``refresh``: wait (up to 3 s) for the next token request to arrive, then act (mid-rotation).
    when: str = "any"
    fault: str = ""
    count: int = 1

    def describe(self) -> str:
        parts = [f"{self.at:5.1f}s {self.kind}"]
        if self.kind in ("sigterm", "sigkill"):
            parts.append(f"worker {self.worker} ({self.when})")
        if self.kind == "token_fault":
            parts.append(f"{self.fault} x{self.count}")
        if self.kind == "scan":
            parts.append(self.fault)
        return " ".join(parts)


@dataclass(frozen=True)
class Schedule:
    seed: int
    backend: str
    reuse_seconds: int
    workers: tuple[str, ...]
    lifetime: int
    duration: float
    #: The connections' timeout: a refresh attempt lasts at most 3 x this + 2 s (the fence after a restart).
    timeout: float
    steps: tuple[Step, ...] = field(default_factory=tuple)
    #: The connection declares the API's quota (a rate and requests at once, which the sandbox enforces per
    #: credential): every process, scan and Test takes its permits from the cache's quota store.
    quota: bool = False

    @property
    def attempt_seconds(self) -> float:
        return 3 * self.timeout + 2.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        data = json.loads(text)
        data["steps"] = tuple(Step(**s) for s in data["steps"])
        data["workers"] = tuple(data["workers"])
        return cls(**data)

    def describe(self) -> str:
        head = (
            f"seed {self.seed}: {self.backend} cache, {len(self.workers)} task processes ({', '.join(self.workers)}), "
            f"tokens of {self.lifetime} s, reuse interval {self.reuse_seconds} s, timeout {self.timeout} s, "
            f"{self.duration:.0f} s" + (", the API's quota declared" if self.quota else "")
        )
        return "\n".join([head, *("  " + s.describe() for s in self.steps)])

    @classmethod
    def from_seed(cls, seed: int, *, scans: bool = True) -> Schedule:
        """The schedule of ``seed``: every draw comes from one ``random.Random(seed)``, in a fixed order."""
        rng = random.Random(seed)
        backend = rng.choice(["redis", "redis", "file"])
        reuse = rng.choice([0, 0, 20])
        workers = tuple(rng.choice(["threads", "threads", "cancelling"]) for _ in range(rng.randint(2, 3)))
        lifetime = rng.randint(2, 4)
        duration = float(rng.randint(10, 16))
        timeout = 1.0
        kinds = ["sigterm", "sigkill", "token_fault", "token_fault", "press_test"]
        if backend == "redis":
            kinds += ["restart_redis", "restart_redis", "expire_lock"]
        if scans:
            kinds += ["scan"]
        steps = []
        for _ in range(rng.randint(2, 5)):
            kind = rng.choice(kinds)
            at = round(rng.uniform(1.0, duration - 3.0), 1)
            if kind in ("sigterm", "sigkill"):
                steps.append(Step(at, kind, worker=rng.randrange(len(workers)), when=rng.choice(["any", "refresh"])))
            elif kind == "token_fault":
                # Without a reuse interval, a fault that leaves a spend in doubt ends the chain for the rest of
                # the schedule (by design): drawn less often there, so that the schedules go on exploring.
                harmless = sorted(f for f, (_, destroys) in TOKEN_FAULTS.items() if not destroys)
                pool = sorted(TOKEN_FAULTS) if reuse or rng.random() < 0.3 else harmless
                steps.append(Step(at, kind, fault=rng.choice(pool), count=rng.randint(1, 3)))
            elif kind == "scan":
                steps.append(Step(at, kind, fault=rng.choice(["plain", "sigterm-mid-page", "clear-changed"])))
            else:
                steps.append(Step(at, kind))
        quota = rng.random() < 0.5  # drawn last: the steps of the seeds explored before quotas stay as they were
        return cls(seed, backend, reuse, workers, lifetime, duration, timeout, tuple(sorted(steps, key=lambda s: s.at)),
                   quota)
