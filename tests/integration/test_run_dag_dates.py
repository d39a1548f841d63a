"""The pytest plugin's ``run_dag`` takes ``logical_date`` as a datetime or an ISO 8601 string (issue 32,
case 11: a string ended in a SQLAlchemy traceback); anything else is refused naming the parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pendulum
import pytest

from airflow_vendorauth.sandbox.pytest_plugin import as_logical_date

pytestmark = pytest.mark.integration


def test_run_dag_takes_an_iso_string_as_the_logical_date(run_dag: Callable[..., Any]) -> None:
    run = run_dag("secret_output", logical_date="2026-11-24T00:00:00+00:00")
    assert run.state == "success"
    assert run.logical_date == pendulum.datetime(2026, 11, 24, tz="UTC")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-11-24T00:00:00+00:00", pendulum.datetime(2026, 11, 24, tz="UTC")),
        ("2026-11-24T02:00:00+02:00", pendulum.datetime(2026, 11, 24, tz="UTC")),
        ("2026-11-24", pendulum.datetime(2026, 11, 24, tz="UTC")),  # no offset: UTC
        (pendulum.datetime(2026, 11, 24, tz="UTC"), pendulum.datetime(2026, 11, 24, tz="UTC")),
        (None, None),
    ],
)
def test_a_logical_date_is_a_datetime_or_an_iso_string(given: Any, expected: Any) -> None:
    assert as_logical_date(given) == expected


@pytest.mark.parametrize(("given", "says"), [("yesterday", "not an ISO 8601"), ("P1D", "is a Duration"), (20261124, "not int")])
def test_anything_else_is_refused_naming_the_parameter(given: Any, says: str) -> None:
    with pytest.raises(TypeError, match=r"run_dag\(logical_date=") as refused:
        as_logical_date(given)
    assert says in str(refused.value) and "2026-11-24T00:00:00+00:00" in str(refused.value)
