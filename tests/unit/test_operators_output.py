"""JsonLinesSink and Checkpoint (operators/output.py): records land once, a resumed scan truncates to
its last committed checkpoint, and only a finished scan gets its final name."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_vendorauth.operators.output import Checkpoint, JsonLinesSink
from airflow_vendorauth.pagination import PageRequest


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pages_stream_to_a_partial_file_that_gets_its_name_when_done(tmp_path: Path) -> None:
    out = tmp_path / "day" / "jobs.jsonl"
    sink = JsonLinesSink(str(out))
    sink.write_page([{"id": 1}, {"id": 2}])
    sink.write_page([])
    assert Path(sink.partial).exists() and not out.exists()
    assert sink.finish() == str(out)
    assert lines(out) == [{"id": 1}, {"id": 2}]
    assert (sink.records, sink.pages) == (2, 2)
    assert not Path(sink.partial).exists()


def test_a_resumed_scan_truncates_what_came_after_its_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "jobs.jsonl"
    first = JsonLinesSink(str(out))
    first.write_page([{"id": 1}, {"id": 2}])
    committed = Checkpoint.from_json(first.checkpoint(PageRequest({"page": 2})).to_json())
    first.write_page([{"id": 3}])  # written, but the task died before this page's checkpoint
    first.abort()
    assert len(lines(Path(first.partial))) == 3

    resumed = JsonLinesSink(str(out), resume_from=committed)
    assert (resumed.records, resumed.pages) == (2, 1)
    resumed.write_page([{"id": 3}, {"id": 4}])  # page 2 fetched again
    resumed.finish()
    assert lines(out) == [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]  # no duplicate, no gap


def test_a_checkpoint_round_trips_through_json(tmp_path: Path) -> None:
    sink = JsonLinesSink(str(tmp_path / "x.jsonl"))
    sink.write_page([{"a": "é"}])
    point = sink.checkpoint(PageRequest({}, url="https://api.example/next?c=2"), durable=False)
    again = Checkpoint.from_json(json.loads(json.dumps(point.to_json())))
    assert again == point
    assert again.bytes_written == len('{"a":"é"}\n'.encode())
    assert Checkpoint.from_json(sink.checkpoint(None).to_json()).next_request is None
    sink.abort()


def test_an_aborted_scan_keeps_its_partial_file_and_no_final_one(tmp_path: Path) -> None:
    out = tmp_path / "jobs.jsonl"
    sink = JsonLinesSink(str(out))
    sink.write_page([{"id": 1}])
    sink.abort()
    assert Path(sink.partial).exists() and not out.exists()
