"""The figures of a written output, on its asset event and kept for lineage.

An operator with ``output_path`` declares the output as an Asset (``asset_for_output``). When the output
is complete, :func:`record_output` puts ``{"path", "records", "pages", "expected_records", "bytes"}`` (and a scan's
``scan_id``; the path without a password or a signature) on that asset's event, so a DAG scheduled on the asset reads them from
``triggering_asset_events`` without opening the file, and keeps them on the operator, where the
OpenLineage facets of the task's completion find them (:mod:`.facets`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: The keys of a task's result that go onto its asset event (and nothing else: no parameters, no URL).
FIGURES = ("path", "records", "pages", "expected_records", "scan_id")
#: Where the figures of this try are kept on the operator instance.
ATTRIBUTE = "_vendorauth_output_figures"


def output_size(path: str) -> int | None:
    """Bytes of the written file or object; None when the store does not say (never an error: the
    figures are a report, not a condition of success)."""
    from airflow_vendorauth.operators.output import is_remote

    try:
        if not is_remote(path):
            return os.path.getsize(path.removeprefix("file://"))
        from airflow.sdk import ObjectStoragePath

        return int(ObjectStoragePath(path).stat().st_size)
    except Exception:  # noqa: BLE001 - any store's error means only "size unknown"
        return None


def output_figures(result: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a finished output: its path (without a password or a signature:
    :func:`~airflow_vendorauth.lineage.datasets.without_secrets`), records, pages, bytes (and the scan id
    of a scan)."""
    from airflow_vendorauth.lineage.datasets import without_secrets

    figures = {key: result[key] for key in FIGURES if result.get(key) is not None}
    figures["bytes"] = output_size(str(result["path"]))  # the real path: its size
    figures["path"] = without_secrets(str(result["path"]))
    return figures


def record_output(operator: Any, context: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """Put the output's figures on the events of the operator's Asset outlets and keep them for lineage."""
    from airflow.sdk import Asset

    figures = output_figures(result)
    setattr(operator, ATTRIBUTE, figures)
    events = context.get("outlet_events")
    if events is not None:
        for outlet in operator.outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra = dict(figures)
    return figures


def recorded_figures(operator: Any) -> dict[str, Any] | None:
    """The figures :func:`record_output` kept on this operator in this try, if its output was written."""
    return getattr(operator, ATTRIBUTE, None)
