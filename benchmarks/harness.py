"""Shared by the benchmarks: a sandbox, its connections in the environment, and small measuring tools."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepare_airflow_home() -> None:
    """A throw-away AIRFLOW_HOME so benchmarks never touch a user's Airflow."""
    import tempfile

    home = tempfile.mkdtemp(prefix="vendorauth-bench-")
    os.environ["AIRFLOW_HOME"] = home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


class NothingRan(RuntimeError):
    """A benchmark's measurement did not happen as described (a process died, no request reached the
    API, no sample was taken): its figures would be fiction, so it stops with the reason instead."""


def require(condition: object, reason: str) -> None:
    """The guard every benchmark runs before it reports: what it claims to have measured really ran."""
    if not condition:
        raise NothingRan(reason)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a measured child: this worktree first on the path, and bytecode caches written
    and read as on a deployed Airflow (``PYTHONDONTWRITEBYTECODE`` would make every import compile)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


def verdict(met: bool) -> str:
    return "met" if met else "**MISSED**"


def per_call_seconds(call: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


def median(values: list[float]) -> float:
    return statistics.median(values)


def run_python(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env or os.environ.copy(), timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return result.stdout


def table(title: str, header: list[str], rows: list[list[object]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    lines = [f"\n## {title}\n", "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text
