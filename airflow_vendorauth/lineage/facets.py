"""The ``OperatorLineage`` of a task, built when Airflow's OpenLineage provider asks for it.

Only the provider calls this module (through :class:`~airflow_vendorauth.lineage.OpenLineageMethods`), so
importing ``openlineage`` and ``airflow.providers.openlineage`` at its top costs nothing to a deployment
without them: they are the optional extra ``openlineage``.

- inputs: the API endpoint (:func:`.datasets.api_dataset`, named from the connection's base URL: the
  connection is read, never a token fetched) and, for a scan, its ``input_path`` file;
- outputs: ``output_path`` (:func:`.datasets.output_dataset`); at completion with the
  ``outputStatistics`` facet (records as rows, bytes, one file);
- run facet ``vendorauth``: the vendor, and at completion the pages and records (and a scan's type and id).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import RunFacet, output_statistics_output_dataset

from airflow_vendorauth import __version__
from airflow_vendorauth.lineage.asset_events import recorded_figures
from airflow_vendorauth.lineage.datasets import DatasetName, api_dataset, output_dataset

PRODUCER = f"https://github.com/airflow-vendorauth/airflow-vendorauth/tree/{__version__}"
#: The run facet's key in events; its JSON schema is docs/lineage/VendorApiRunFacet.json.
FACET = "vendorauth"
FACET_SCHEMA = (
    "https://github.com/airflow-vendorauth/airflow-vendorauth/blob/main/docs/lineage/VendorApiRunFacet.json"
    "#/$defs/VendorApiRunFacet"
)


@attr.define
class VendorApiRunFacet(RunFacet):
    """What a vendor API task did: the vendor, and once finished the pages and records it read."""

    vendor: str
    pages: int | None = attr.field(default=None)
    records: int | None = attr.field(default=None)
    scanType: str | None = attr.field(default=None)  # OpenLineage facets use camelCase
    scanId: str | None = attr.field(default=None)
    _additional_skip_redact: ClassVar[list[str]] = ["vendor", "pages", "records", "scanType"]

    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        super().__attrs_post_init__()

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA


def api_source(task: Any) -> tuple[str, DatasetName]:
    """The vendor's name and the API dataset of ``task``, from its connection (read, never used)."""
    from airflow_vendorauth.hooks.base import hook_for_connection

    hook = hook_for_connection(task.conn_id)
    return hook.profile.display_name, api_dataset(hook.settings.base_url, task.lineage_endpoint)


def operator_lineage(task: Any, *, finished: bool) -> OperatorLineage:
    """The task's datasets and facets: as planned (start, failure) or with the output's figures (complete)."""
    vendor, api = api_source(task)
    inputs = [InputDataset(namespace=api.namespace, name=api.name)]
    input_path = getattr(task, "input_path", None)
    if input_path:
        source = output_dataset(str(input_path))
        inputs.append(InputDataset(namespace=source.namespace, name=source.name))

    figures = recorded_figures(task) if finished else None
    outputs = []
    output_path = (figures or {}).get("path") or getattr(task, "output_path", None)
    if output_path:
        target = output_dataset(str(output_path))
        facets: dict[str, Any] = {}
        if figures:
            facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=figures.get("records"), size=figures.get("bytes"), fileCount=1
            )
        outputs.append(OutputDataset(namespace=target.namespace, name=target.name, outputFacets=facets))

    scan_id = (figures or {}).get("scan_id")
    run_facet = VendorApiRunFacet(
        vendor=vendor,
        pages=(figures or {}).get("pages"),
        records=(figures or {}).get("records"),
        scanType=getattr(task, "scan_type", None),
        scanId=None if scan_id is None else str(scan_id),
    )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={FACET: run_facet})
