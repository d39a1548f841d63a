"""Daily: SmartRecruiters jobs and candidates, then Kazi job and talent scans on them.

Results are written per day under $VENDORAUTH_DATA_DIR/<ds>/. The job scan waits in the triggerer
(deferrable); the talent scan polls from its worker. Both reconnect to their scan if retried.
"""

from __future__ import annotations

from typing import Any

from _common import DAY_DIR, DEFAULT_ARGS, START
from airflow.sdk import dag, task

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.operators.kazi_scan import KaziScanOperator


@dag(schedule="@daily", start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def talent_pipeline() -> None:
    jobs = VendorApiOperator(
        task_id="smartrecruiters_jobs",
        conn_id="smartrecruiters_default",
        endpoint="/jobs",
        output_path=DAY_DIR + "/smartrecruiters/jobs.jsonl",
    )
    candidates = VendorApiOperator(
        task_id="smartrecruiters_candidates",
        conn_id="smartrecruiters_default",
        endpoint="/candidates",
        output_path=DAY_DIR + "/smartrecruiters/candidates.jsonl",
    )
    job_scan = KaziScanOperator(
        task_id="kazi_job_scan",
        scan_type="job",
        input_path="{{ ti.xcom_pull(task_ids='smartrecruiters_jobs')['path'] }}",
        output_path=DAY_DIR + "/kazi/job_scan.jsonl",
        deferrable=True,
        poll_interval=1,
    )
    talent_scan = KaziScanOperator(
        task_id="kazi_talent_scan",
        scan_type="talent",
        input_path="{{ ti.xcom_pull(task_ids='smartrecruiters_candidates')['path'] }}",
        output_path=DAY_DIR + "/kazi/talent_scan.jsonl",
        poll_interval=1,
    )

    @task
    def summarise(job_result: dict[str, Any], talent_result: dict[str, Any]) -> dict[str, int]:
        summary = {"jobs_scanned": job_result["records"], "candidates_scanned": talent_result["records"]}
        print(f"talent_pipeline summary: {summary}")
        return summary

    jobs >> job_scan
    candidates >> talent_scan
    summarise(job_scan.output, talent_scan.output)


talent_pipeline()
