"""Lineage of the operators (lineage/): the OperatorLineage the OpenLineage provider gets from
VendorApiOperator, KaziScanOperator and VendorApiSensor, the figures on an output's asset event, and the
promise that without the provider nothing is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_vendorauth.lineage.asset_events import record_output
from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.operators.kazi_scan import KaziScanOperator
from airflow_vendorauth.sensors.api import VendorApiSensor
from tests.unit.fakes import SECRET, SUBSCRIPTION_KEY, ThrottlingApi, hook_for, set_connection

ROOT = Path(__file__).resolve().parents[2]


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def written(path: Path, records: int) -> dict[str, Any]:
    """A finished output file as ``stream_to_jsonl`` leaves it, and its result."""
    path.write_text("".join(json.dumps({"id": n}) + "\n" for n in range(records)))
    return {"path": str(path), "records": records, "pages": 3}


class OutletEvents:
    """Stands in for Airflow's ``outlet_events`` accessor (``events[asset].extra = {...}``), keyed by the
    asset's URI: Airflow 3.1's ``Asset`` is not hashable."""

    def __init__(self) -> None:
        self.events: dict[str, SimpleNamespace] = {}

    def __getitem__(self, asset: Any) -> SimpleNamespace:
        return self.events.setdefault(asset.uri, SimpleNamespace())


def outlet_events() -> OutletEvents:
    return OutletEvents()


def test_an_api_scan_names_its_endpoint_and_its_file_before_it_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_connection(monkeypatch, "smartrecruiters")
    scan = VendorApiOperator(
        task_id="jobs", conn_id="smartrecruiters", endpoint="/jobs", output_path=str(tmp_path / "jobs.jsonl")
    )
    lineage = scan.get_openlineage_facets_on_start()
    assert names(lineage.inputs) == [("https://api.smartrecruiters.com", "/jobs")]
    assert names(lineage.outputs) == [("file", str(tmp_path / "jobs.jsonl"))]
    assert lineage.outputs[0].outputFacets == {}  # nothing written yet: no statistics
    assert lineage.run_facets["vendorauth"].vendor == "SmartRecruiters"
    assert lineage.run_facets["vendorauth"].pages is None


def test_at_completion_the_output_carries_its_records_and_bytes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    set_connection(monkeypatch, "smartrecruiters")
    output = tmp_path / "jobs.jsonl"
    scan = VendorApiOperator(task_id="jobs", conn_id="smartrecruiters", endpoint="/jobs", output_path=str(output))
    events = outlet_events()
    record_output(scan, {"outlet_events": events}, written(output, 250))

    lineage = scan.get_openlineage_facets_on_complete(task_instance=None)
    statistics = lineage.outputs[0].outputFacets["outputStatistics"]
    assert (statistics.rowCount, statistics.size, statistics.fileCount) == (250, output.stat().st_size, 1)
    facet = lineage.run_facets["vendorauth"]
    assert (facet.vendor, facet.pages, facet.records) == ("SmartRecruiters", 3, 250)
    # the asset event carries the same figures, for a DAG scheduled on the asset
    (asset,) = scan.outlets
    assert events[asset].extra == {"path": str(output), "records": 250, "pages": 3, "bytes": output.stat().st_size}


def test_a_scan_puts_path_records_pages_and_bytes_on_its_asset_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import httpx

    from airflow_vendorauth.pagination import PageNumberPagination

    set_connection(monkeypatch, "clazar")
    hook = hook_for("clazar", transport=httpx.MockTransport(ThrottlingApi(allowed=100, total=250)))
    monkeypatch.setattr("airflow_vendorauth.hooks.base.hook_for_connection", lambda conn_id: hook)
    output = tmp_path / "items.jsonl"
    scan = VendorApiOperator(
        task_id="items",
        conn_id="clazar",
        endpoint="/items",
        pagination=PageNumberPagination(page_size=100, records_path="items", total_path="total"),
        output_path=str(output),
    )
    events = outlet_events()
    result = scan.execute({"outlet_events": events})  # type: ignore[arg-type]
    (asset,) = scan.outlets
    assert events[asset].extra == {**result, "bytes": output.stat().st_size}
    assert (result["records"], result["pages"]) == (250, 3)
    statistics = scan.get_openlineage_facets_on_complete(None).outputs[0].outputFacets["outputStatistics"]
    assert (statistics.rowCount, statistics.size) == (250, output.stat().st_size)


def test_a_failed_scan_names_what_it_meant_to_write_without_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_connection(monkeypatch, "smartrecruiters")
    scan = VendorApiOperator(
        task_id="jobs", conn_id="smartrecruiters", endpoint="/jobs", output_path=str(tmp_path / "jobs.jsonl")
    )
    lineage = scan.get_openlineage_facets_on_failure(task_instance=None)
    assert names(lineage.outputs) == [("file", str(tmp_path / "jobs.jsonl"))]
    assert lineage.outputs[0].outputFacets == {}


def test_records_returned_to_xcom_have_an_input_and_no_output(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "clazar")
    lineage = VendorApiOperator(task_id="b", conn_id="clazar", endpoint="/buyers").get_openlineage_facets_on_complete(None)
    assert [d.name for d in lineage.inputs] == ["/buyers"]
    assert lineage.outputs == []


def test_a_kazi_scan_reads_its_input_file_and_the_scans_api_and_names_its_scan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_connection(monkeypatch, "kazi")
    output = tmp_path / "job_scan.jsonl"
    scan = KaziScanOperator(
        task_id="scan", conn_id="kazi", scan_type="job", input_path="/data/jobs.jsonl", output_path=str(output)
    )
    start = scan.get_openlineage_facets_on_start()
    # the scans' collection, not one scan's URL: a scan id in the name would make a dataset per run
    assert names(start.inputs) == [("https://api.kazi.example", "/tagging/v2/job-scans"), ("file", "/data/jobs.jsonl")]
    assert (start.run_facets["vendorauth"].vendor, start.run_facets["vendorauth"].scanType) == ("Kazi", "job")

    events = outlet_events()
    record_output(scan, {"outlet_events": events}, {**written(output, 120), "scan_id": "job-scan-42"})
    complete = scan.get_openlineage_facets_on_complete(None)
    facet = complete.run_facets["vendorauth"]
    assert (facet.scanId, facet.pages, facet.records) == ("job-scan-42", 3, 120)
    assert complete.outputs[0].outputFacets["outputStatistics"].rowCount == 120
    (asset,) = scan.outlets
    assert events[asset].extra["scan_id"] == "job-scan-42"


def test_a_sensor_reads_its_endpoint_and_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "keyavi")
    sensor = VendorApiSensor(task_id="w", conn_id="keyavi", endpoint="/reports/7", json_path="status", expected="done")
    for lineage in (sensor.get_openlineage_facets_on_start(), sensor.get_openlineage_facets_on_complete(None)):
        assert names(lineage.inputs) == [("https://keyavi.example", "/api/reports/7")]
        assert lineage.outputs == []
        assert lineage.run_facets["vendorauth"].vendor == "Keyavi"


def test_no_secret_of_the_connection_or_the_url_reaches_an_event(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde

    set_connection(monkeypatch, "kazi")
    output = tmp_path / "x.jsonl"
    scan = VendorApiOperator(
        task_id="x", conn_id="kazi", endpoint="/tagging/v2/expectations?code=url-secret-7", output_path=str(output)
    )
    record_output(scan, {}, written(output, 2))
    lineage = scan.get_openlineage_facets_on_complete(None)
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-11-24T00:00:00+00:00",
        run=Run(runId="01a20ada-2c00-7c15-80b5-3ba81ba50b9d", facets=lineage.run_facets),
        job=Job(namespace="test", name="dag.x"),
        inputs=lineage.inputs,
        outputs=lineage.outputs,
    )
    text = Serde.to_json(event)
    assert '"/tagging/v2/expectations"' in text
    for secret in (SECRET, SUBSCRIPTION_KEY, "url-secret-7", "kazi-client"):
        assert secret not in text


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_parsing_a_dag_of_the_operators_imports_no_lineage_code() -> None:
    """The DAG processor parses the operators on every DAG file: OpenLineage, even installed, is not imported."""
    result = run_python(
        """
        import sys
        import pendulum
        from airflow.sdk import DAG
        from airflow_vendorauth.operators.api import VendorApiOperator
        from airflow_vendorauth.operators.kazi_scan import KaziScanOperator
        from airflow_vendorauth.sensors.api import VendorApiSensor

        with DAG("d", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
            VendorApiOperator(task_id="a", conn_id="c", endpoint="/e", output_path="/tmp/{{ ds }}/a.jsonl")
            KaziScanOperator(task_id="k", scan_type="job", items=[], output_path="/tmp/k.jsonl")
            VendorApiSensor(task_id="s", conn_id="c", endpoint="/e", json_path="a", expected=1)
        # Airflow's ProvidersManager reads every installed provider's get_provider_info (a dict) when an
        # Asset is made; that registration aside, no OpenLineage module and none of ours is imported.
        registration = {"airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info"}
        loaded = sorted(
            m for m in set(sys.modules) - registration
            if "openlineage" in m or m.startswith("airflow_vendorauth.lineage.")
        )
        print(loaded)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_the_openlineage_provider_the_operators_and_their_asset_events_work(tmp_path: Path) -> None:
    """The provider is an optional extra: with it missing, nothing the operators do needs it."""
    output = tmp_path / "jobs.jsonl"
    output.write_text('{"id": 1}\n')
    result = run_python(
        f"""
        import sys
        from types import SimpleNamespace

        class NoOpenLineage:
            # As if the OpenLineage provider and client were not installed. Only the provider's registration
            # (get_provider_info, which Airflow reads through its entry point) still loads.

            def find_spec(self, name, path=None, target=None):
                registration = ("airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info")
                if name.startswith(("openlineage", "airflow.providers.openlineage")) and name not in registration:
                    raise ModuleNotFoundError(name)
                return None

        sys.meta_path.insert(0, NoOpenLineage())
        from airflow_vendorauth.lineage.asset_events import record_output
        from airflow_vendorauth.operators.api import VendorApiOperator

        op = VendorApiOperator(task_id="a", conn_id="c", endpoint="/e", output_path={str(output)!r})
        events = {{op.outlets[0].uri: SimpleNamespace()}}

        class Events:  # Airflow's outlet_events accessor: events[asset].extra = ...
            def __getitem__(self, asset):
                return events[asset.uri]

        record_output(op, {{"outlet_events": Events()}}, {{"path": {str(output)!r}, "records": 1, "pages": 1}})
        print(events[op.outlets[0].uri].extra)
        assert not [m for m in sys.modules if m.startswith("openlineage")]
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str({"path": str(output), "records": 1, "pages": 1, "bytes": 10})
