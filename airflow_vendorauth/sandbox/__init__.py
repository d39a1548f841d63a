"""Faithful local stand-ins of the five vendors, with fault injection: for tests, the demo, and your
own DAG tests. Start one with ``python -m airflow_vendorauth.sandbox`` or
:class:`airflow_vendorauth.sandbox.client.Sandbox`; see ``app.py`` for the paths it serves."""
