"""Settings the example DAGs share: where outputs land, and the default retry policy of a task."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum

#: Outputs go under this folder, one sub-folder per day ({{ ds }}); `make demo` points it at .demo/data.
DATA_DIR = os.environ.get("VENDORAUTH_DATA_DIR", "/tmp/vendorauth-data")
START = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(seconds=5)}
