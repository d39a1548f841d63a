"""Test-wide set-up: the provider's own pytest plugin (as users run it), and clean token caches for
every test.

The plugin gives the session a throw-away AIRFLOW_HOME with SQLite before Airflow is imported, so tests
never touch a user's Airflow, and a DAGs folder linking the example DAGs and the test DAGs
(``vendorauth_dags_folder`` in pyproject.toml), so dag.test() can serialise both.
"""

from __future__ import annotations

import pytest

from airflow_vendorauth.sandbox.process_state import forget_process_state

pytest_plugins = ["airflow_vendorauth.sandbox.pytest_plugin"]


@pytest.fixture(autouse=True)
def _fresh_process_state() -> None:
    """Every test starts as a fresh task process would: no token, no remembered refusal, no cache
    object, no warning already said."""
    forget_process_state()
