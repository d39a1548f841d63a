"""`make bench` never reports a goal met when nothing ran: a benchmark whose measurement did not happen
(no request reached the API, a process died, no sample) says so, with the reason, and the run fails."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def test_require_stops_a_benchmark_with_the_reason() -> None:
    from harness import NothingRan, require

    require(True, "never raised")
    with pytest.raises(NothingRan, match="the API saw 0 requests"):
        require(0, "the API saw 0 requests")


def test_make_bench_fails_and_says_why_when_a_benchmark_measured_nothing(tmp_path: Path) -> None:
    import run_all
    from harness import require

    def dead_triggerer() -> str:
        require(False, "the triggerer died during the window")
        return "| 0 MB above idle (goal <= 100 MB) |"  # what the old benchmark printed anyway

    results = tmp_path / "results.md"
    status = run_all.main([("fine", lambda: "## fine\n| 1 |"), ("triggerer", dead_triggerer)], out=results)
    text = results.read_text()
    assert status == 1
    assert "## fine" in text and "triggerer: NOT MEASURED" in text and "the triggerer died" in text
    assert "0 MB above idle" not in text
    assert sys.modules["run_all"].BENCHMARKS  # every benchmark is registered (make bench runs them all)
