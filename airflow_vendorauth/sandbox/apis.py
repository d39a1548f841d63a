"""The vendors' APIs: the headers each one requires, and deterministic data in each one's paging style."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_vendorauth.sandbox.data import DATASETS, PAYLOAD_STATUSES, tags_for
from airflow_vendorauth.sandbox.paging_edges import announced, next_link, page_range, served
from airflow_vendorauth.sandbox.state import IssuedToken, SandboxState

MAX_PAGE_SIZE = {"kazi": 100, "keyavi": 100, "kayzen": 500, "smartrecruiters": 100, "clazar": 100}
#: SmartRecruiters: about 8 concurrent requests per credential, and GET /candidates one at a time.
SMARTRECRUITERS_MAX_CONCURRENT = 8


def dumps(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, headers=headers, media_type="application/json")


def _int(request: Request, name: str, default: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _apim_denied(message: str) -> JSONResponse:
    return JSONResponse({"statusCode": 401, "message": message}, status_code=401)


def router(state: SandboxState) -> APIRouter:
    api = APIRouter()
    c = state.credentials
    in_flight: dict[str, int] = {"smartrecruiters": 0, "smartrecruiters.candidates": 0}

    def bearer(request: Request, vendor: str) -> IssuedToken | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        return state.check_token(vendor, header[7:].strip())

    def kazi_auth(request: Request, role: str) -> Response | None:
        if "ocp-apim-subscription-key" not in request.headers:
            return _apim_denied(
                "Access denied due to missing subscription key. Make sure to include subscription key when "
                "making requests to an API."
            )
        if request.headers["ocp-apim-subscription-key"] != c.kazi_subscription_key:
            return _apim_denied(
                "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
            )
        token = bearer(request, "kazi")
        if token is None:
            return _apim_denied("Unauthorized. Access token is missing or invalid.")
        if role not in token.claims.get("roles", []):
            # Kazi answers a missing role with 401, not 403 (FIELD-NOTES): the client must not loop on it.
            return _apim_denied(f"Unauthorized. The token lacks the role {role}.")
        return None

    def keyavi_auth(request: Request) -> Response | None:
        if request.headers.get("ocp-apim-subscription-key") != c.keyavi_subscription_key:
            return _apim_denied("Access denied due to missing or invalid subscription key.")
        token = bearer(request, "keyavi")
        if token is None:
            return _apim_denied("Unauthorized. Access token is missing or invalid.")
        if token.claims.get("idtyp") == "app" and not request.headers.get("x-api-caller-id"):
            return JSONResponse(
                {
                    "error": "caller_required",
                    "message": "Tokens issued to client apps require the x-api-caller-id header.",
                },
                status_code=400,
            )
        return None

    def bad_request(vendor: str, message: str) -> JSONResponse:
        if vendor == "smartrecruiters":
            return JSONResponse(
                {"message": message, "errors": [{"code": "INVALID_PARAMETER", "message": message}]}, 400
            )
        if vendor == "clazar":
            return JSONResponse({"detail": message}, 400)
        return JSONResponse({"statusCode": 400, "message": message}, 400)

    def page_of(dataset: str, indices: range) -> list[dict[str, Any]]:
        make = DATASETS[dataset][0]
        return [make(state.seed, i) for i in indices]

    def page_number_slice(request: Request, vendor: str, size_param: str, default_size: int, total: int) -> Any:
        page = _int(request, "page", 1)
        size = _int(request, size_param, default_size)
        if page is None or size is None or page < 1 or not 1 <= size <= MAX_PAGE_SIZE[vendor]:
            return bad_request(vendor, f"page must be >= 1 and {size_param} between 1 and {MAX_PAGE_SIZE[vendor]}")
        start, size = page_range(state, vendor, page, size)
        return page, size, range(min(start, total), min(start + size, total))

    # ---- Kazi: Tagging API v2 ------------------------------------------------------------------------------

    def kazi_paged(request: Request, total: int, records: Callable[[range], list[dict[str, Any]]]) -> Response:
        sliced = page_number_slice(request, "kazi", "pageSize", 20, total)
        if isinstance(sliced, Response):
            return sliced
        page, size, indices = sliced
        return dumps(
            {
                "data": records(indices),
                "pagination": {
                    "currentPage": page,
                    "amountOfPages": math.ceil(announced(state, "kazi", total) / size),
                    "pageSize": size,
                    "totalAmount": announced(state, "kazi", total),
                },
            }
        )

    @api.get("/kazi/tagging/v2/expectations")
    async def kazi_expectations(request: Request) -> Response:
        if (denied := kazi_auth(request, "read:expectations")) is not None:
            return denied
        total = state.sizes["kazi.expectations"]
        return kazi_paged(request, total, lambda r: page_of("kazi.expectations", r))

    @api.post("/kazi/tagging/v2/{kind}-scans")
    async def kazi_submit_scan(kind: str, request: Request) -> Response:
        if kind not in ("job", "talent"):
            return JSONResponse({"statusCode": 404, "message": "Resource not found"}, 404)
        if (denied := kazi_auth(request, f"scan:{'jobs' if kind == 'job' else 'talent'}")) is not None:
            return denied
        field = "jobs" if kind == "job" else "candidates"
        try:
            body = json.loads(await request.body())
            items = body[field]
            ids = [str(item["id"]) for item in items]
        except (ValueError, KeyError, TypeError):
            return bad_request("kazi", f"The body must be a JSON object with a list '{field}' of items with an 'id'.")
        scan = state.submit_scan(kind, ids, fail=bool(body.get("simulateFailure")))
        return dumps({"id": scan.id, "status": scan.status(time.time()), "itemCount": len(ids)}, 202)

    def find_scan(kind: str, scan_id: str) -> Any:
        scan = state.scans.get(scan_id)
        if scan is None or scan.kind != kind:
            return JSONResponse({"statusCode": 404, "message": f"Scan {scan_id} not found"}, 404)
        return scan

    @api.get("/kazi/tagging/v2/{kind}-scans/{scan_id}")
    async def kazi_scan_status(kind: str, scan_id: str, request: Request) -> Response:
        if (denied := kazi_auth(request, f"scan:{'jobs' if kind == 'job' else 'talent'}")) is not None:
            return denied
        scan = find_scan(kind, scan_id)
        if isinstance(scan, Response):
            return scan
        now = time.time()
        progress = min(100, int(100 * (now - scan.submitted_at) / max(scan.duration, 0.001)))
        return dumps({"id": scan.id, "status": scan.status(now), "progress": progress, "itemCount": len(scan.item_ids)})

    @api.get("/kazi/tagging/v2/{kind}-scans/{scan_id}/results")
    async def kazi_scan_results(kind: str, scan_id: str, request: Request) -> Response:
        if (denied := kazi_auth(request, f"scan:{'jobs' if kind == 'job' else 'talent'}")) is not None:
            return denied
        scan = find_scan(kind, scan_id)
        if isinstance(scan, Response):
            return scan
        status = scan.status(time.time())
        if status != "Succeeded":
            return JSONResponse(
                {"statusCode": 409, "message": f"Scan {scan_id} is {status}; results are not ready."}, 409
            )
        key = "jobId" if kind == "job" else "candidateId"

        def results(indices: range) -> list[dict[str, Any]]:
            return [
                {key: scan.item_ids[i], "position": i, "tags": tags_for(state.seed, scan.item_ids[i])} for i in indices
            ]

        return kazi_paged(request, len(scan.item_ids), results)

    # ---- Keyavi -----------------------------------------------------------------------------------------------

    @api.get("/keyavi/api/payloads")
    @api.get("/keyavi/api/payloads/")
    async def keyavi_payloads(request: Request) -> Response:
        if (denied := keyavi_auth(request)) is not None:
            return denied
        total = state.sizes["keyavi.payloads"]
        status = request.query_params.get("status")
        sort = request.query_params.get("sort", "createdAt")
        if status is not None and status not in PAYLOAD_STATUSES:
            return bad_request("keyavi", f"status must be one of {', '.join(PAYLOAD_STATUSES)}")
        if sort.lstrip("-") not in ("createdAt", "id"):
            return bad_request("keyavi", "sort must be createdAt or id, optionally prefixed with '-'")
        # status cycles with the index, so the k-th match is arithmetic: no scan, any size.
        step, offset = (len(PAYLOAD_STATUSES), PAYLOAD_STATUSES.index(status)) if status else (1, 0)
        matches = max(0, (total - offset + step - 1) // step)
        sliced = page_number_slice(request, "keyavi", "pageSize", 25, matches)
        if isinstance(sliced, Response):
            return sliced
        page, size, ranks = sliced
        descending = sort.startswith("-")
        indices = [offset + step * ((matches - 1 - k) if descending else k) for k in ranks]
        make = DATASETS["keyavi.payloads"][0]
        data = [make(state.seed, i) for i in indices]
        return dumps(
            {
                "data": data,
                "pagination": {
                    "totalRecords": announced(state, "keyavi", matches),
                    "pageSize": size,
                    "itemsInPage": len(data),
                    "page": page,
                },
            }
        )

    @api.post("/keyavi/api/payloads/protect-remote/")
    async def keyavi_protect_remote(request: Request) -> Response:
        if (denied := keyavi_auth(request)) is not None:
            return denied
        return dumps({"id": f"pl-remote-{int(time.time() * 1000)}", "status": "protected"}, 201)

    # ---- Kayzen ------------------------------------------------------------------------------------------------

    def kayzen_list(request: Request, dataset: str) -> Response:
        if bearer(request, "kayzen") is None:
            return JSONResponse({"error": "Authentication error", "message": "Invalid API Key"}, 401)
        sliced = page_number_slice(request, "kayzen", "per_page", 25, state.sizes[dataset])
        if isinstance(sliced, Response):
            return sliced
        return dumps({"data": page_of(dataset, sliced[2])})

    @api.get("/kayzen/v1/meta/campaigns")
    async def kayzen_campaigns(request: Request) -> Response:
        return kayzen_list(request, "kayzen.campaigns")

    @api.get("/kayzen/v1/reports/campaign_performance")
    async def kayzen_report(request: Request) -> Response:
        return kayzen_list(request, "kayzen.report")

    # ---- SmartRecruiters -----------------------------------------------------------------------------------------

    async def smartrecruiters_list(request: Request, dataset: str) -> Response:
        if bearer(request, "smartrecruiters") is None:
            return JSONResponse(
                {"message": "Unauthorized", "errors": [{"code": "UNAUTHORIZED", "message": "Invalid token"}]}, 401
            )
        one_at_a_time = dataset == "smartrecruiters.candidates"
        if in_flight["smartrecruiters"] >= SMARTRECRUITERS_MAX_CONCURRENT or (
            one_at_a_time and in_flight["smartrecruiters.candidates"] >= 1
        ):
            return JSONResponse(
                {
                    "message": "Too many requests",
                    "errors": [{"code": "RATE_LIMIT", "message": "Too many concurrent requests"}],
                },
                429,
                headers={"Retry-After": "1", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0"},
            )
        in_flight["smartrecruiters"] += 1
        in_flight["smartrecruiters.candidates"] += int(one_at_a_time)
        try:
            # the time the server works on a request, holding its concurrency slot (configurable)
            await asyncio.sleep(state.work_ms.get("smartrecruiters", 0) / 1000)
            limit = _int(request, "limit", 10)
            if limit is None or not 1 <= limit <= MAX_PAGE_SIZE["smartrecruiters"]:
                return bad_request("smartrecruiters", "limit must be between 1 and 100")
            limit = served(state, "smartrecruiters", limit)
            page_id = request.query_params.get("pageId")
            try:
                start = int(base64.urlsafe_b64decode(page_id.encode()).decode()) if page_id else 0
            except ValueError:
                return bad_request("smartrecruiters", "pageId is invalid")
            if page_id is None and request.query_params.get("offset") is not None:  # the list APIs' offset paging
                start = _int(request, "offset", 0) or 0
            total = state.sizes[dataset]
            end = min(start + limit, total)
            body: dict[str, Any] = {
                "totalFound": announced(state, "smartrecruiters", total),
                "limit": limit,
                "content": page_of(dataset, range(start, end)),
            }
            headers = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "9"}
            if end < total:
                body["nextPageId"] = base64.urlsafe_b64encode(str(end).encode()).decode()
                headers["Link"] = f'<{next_link(state, "smartrecruiters", request, pageId=body["nextPageId"])}>; rel="next"'
            return dumps(body, headers=headers)
        finally:
            in_flight["smartrecruiters"] -= 1
            in_flight["smartrecruiters.candidates"] -= int(one_at_a_time)

    @api.get("/smartrecruiters/jobs")
    async def smartrecruiters_jobs(request: Request) -> Response:
        return await smartrecruiters_list(request, "smartrecruiters.jobs")

    @api.get("/smartrecruiters/candidates")
    async def smartrecruiters_candidates(request: Request) -> Response:
        return await smartrecruiters_list(request, "smartrecruiters.candidates")

    # ---- Clazar -------------------------------------------------------------------------------------------------------

    @api.get("/clazar/{resource}/")
    async def clazar_list(resource: str, request: Request) -> Response:
        dataset = f"clazar.{resource}"
        if dataset not in DATASETS:
            return JSONResponse({"detail": "Not found."}, 404)
        if bearer(request, "clazar") is None:
            return JSONResponse({"detail": "Authentication credentials were not provided."}, 401)
        total = state.sizes[dataset]
        sliced = page_number_slice(request, "clazar", "page_size", 20, total)
        if isinstance(sliced, Response):
            return sliced
        page, size, indices = sliced
        if page > 1 and not indices:
            return JSONResponse({"detail": "Invalid page."}, 404)
        last = math.ceil(total / size)
        return dumps(
            {
                "count": announced(state, "clazar", total),
                "next": next_link(state, "clazar", request, page=page + 1) if page < last else None,
                "previous": str(request.url.include_query_params(page=page - 1)) if page > 1 else None,
                "results": page_of(dataset, indices),
            }
        )

    return api
