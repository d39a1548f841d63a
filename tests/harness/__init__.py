"""The deployment harness: real Airflow components as processes on this machine (api-server,
scheduler, dag-processor, triggerer, Celery workers), used by the integration tests and by
`make cluster-demo` (``python -m tests.harness.cluster``)."""
