"""Settings the example DAGs share: where outputs land, and the default retry policy of a task."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum

#: Outputs go under this folder, one sub-folder per day ({{ ds }}); `make demo` points it at .demo/data.
DATA_DIR = os.environ.get("VENDORAUTH_DATA_DIR", "/tmp/vendorauth-data")
#: The run's day. A run triggered by hand has no logical date in Airflow 3 (and no ``ds``): it falls
#: back to the day the run was made for.
DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"
#: Where a run's outputs go: one folder per day.
DAY_DIR = DATA_DIR + "/" + DAY
START = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(seconds=5)}
