"""airflow-vendorauth: Airflow connections, hooks and operators for OAuth-protected vendor APIs.

Nothing heavy is imported here: the DAG processor imports this package on every parse.
"""

__version__ = "0.3.0"
