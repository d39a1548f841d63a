"""Lineage: what a task read and wrote, for Airflow's assets and for OpenLineage.

- :mod:`.datasets`: the OpenLineage names of an API endpoint and of an output file or object (no
  Airflow, no OpenLineage import: the naming rules, testable alone).
- :mod:`.asset_events`: the figures (path, records, pages, bytes) an output's asset event carries, so a
  DAG scheduled on the asset reads them from ``triggering_asset_events``.
- :mod:`.facets`: the ``OperatorLineage`` the OpenLineage provider asks for. Only that provider calls
  it, so only there are ``openlineage`` and ``airflow.providers.openlineage`` imported.

This module is imported by the operators' modules, which the DAG processor parses on every DAG file:
it holds only :class:`OpenLineageMethods`, whose methods import the rest when they are called.
"""

from __future__ import annotations

from typing import Any


class OpenLineageMethods:
    """The three methods Airflow's OpenLineage provider looks for on an operator (its ``DefaultExtractor``).

    Without the provider nobody calls them and nothing is imported. The API dataset is named from
    ``conn_id`` and :attr:`lineage_endpoint`; the output from ``output_path``; the figures are those the
    task's output recorded (:func:`.asset_events.record_output`).
    """

    @property
    def lineage_endpoint(self) -> str:
        """The endpoint lineage names as this task's API source (the operators' ``endpoint``)."""
        return str(getattr(self, "endpoint"))  # noqa: B009 - each operator class defines it

    def get_openlineage_facets_on_start(self) -> Any:
        from airflow_vendorauth.lineage.facets import operator_lineage

        return operator_lineage(self, finished=False)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_vendorauth.lineage.facets import operator_lineage

        return operator_lineage(self, finished=True)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_vendorauth.lineage.facets import operator_lineage

        return operator_lineage(self, finished=False)
