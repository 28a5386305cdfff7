"""The marketer API: profiles, their timelines and segments, flows, templates and messaging settings, scoped to
the workspace of the caller's key.

docs/openapi.yaml describes every route. A direct segment export (GET .../export) is built page by page by a
generator and joined here, because Chalice answers with whole bodies, so it is capped (413 beyond the
limits in crm.segments.exports); POST .../exports queues an export the exports function writes to S3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from chalice import (
    BadRequestError,
    Chalice,
    ChaliceViewError,
    ConflictError,
    NotFoundError,
    Response,
    UnauthorizedError,
)
from chalice.app import Request
from crm import reporting, wiring
from crm.api_keys import authenticate
from crm.clock import utc_now
from crm.config import settings
from crm.customers import find_profile, profile_view, timeline_page
from crm.flows import manage as flows
from crm.flows import proofs, stats_query
from crm.messaging import manage as templates
from crm.models.profile import Profile
from crm.models.segment_runs import RunPhase, SegmentRun
from crm.models.stores import ApiKey
from crm.ports import ConcurrentUpdate
from crm.predictions import settings as prediction_settings
from crm.related import ProductNotFound, find_product, parse_query, related_view
from crm.reports import query as reports
from crm.segments import exports, runs, service
from crm.segments import settings as builtin_settings
from crm.segments.definition import SegmentDocument, SegmentInvalid, parse_new_segment, parse_segment

app = Chalice(app_name="crm-api")
logger = Logger(service="api")
# The key that authenticated the request being handled, for its access log line (never the key's text).
_caller: ContextVar[ApiKey | None] = ContextVar("caller", default=None)


@app.middleware("http")
def access_log(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """One JSON line per request: the workspace and key id (never the key), method, route, path, status and
    latency."""
    started = time.perf_counter()
    reset = _caller.set(None)
    status = 500  # unless a response comes back
    try:
        response = get_response(request)
        status = response.status_code
        return response
    finally:
        caller = _caller.get()
        logger.info("api request", extra={
            "workspace_id": caller.workspace_id if caller else None, "key_id": caller.key_id if caller else None,
            "method": request.method, "route": request.path, "path": _path(request),
            "status": status, "latency_ms": round((time.perf_counter() - started) * 1000, 1)})
        _caller.reset(reset)


def _path(request: Request) -> str | None:
    # API Gateway gives the path without the stage at the top; chalice's local gateway only in requestContext.
    path = request.to_original_event().get("path") or request.context.get("path")
    return str(path) if path else None


def _workspace() -> str:
    key = authenticate(wiring.store_directory(), app.current_request.headers.get("x-api-key"), utc_now())
    if key is None:
        raise UnauthorizedError("a valid x-api-key header is required")
    _caller.set(key)
    return key.workspace_id


def _query() -> dict[str, str]:
    return dict(app.current_request.query_params or {})


def _profile(profile_id: str) -> Profile:
    profile = wiring.profile_repository().get_profile(_workspace(), profile_id)
    if profile is None:
        raise NotFoundError(f"no customer {profile_id}")
    return profile


@app.route("/customers", methods=["GET"])
def find_customers() -> dict[str, Any]:
    workspace_id = _workspace()
    query = _query()
    try:
        profile = find_profile(wiring.profile_repository(), workspace_id, email=query.get("email"),
                               phone=query.get("phone"))
    except ValueError as error:
        raise BadRequestError(str(error)) from None
    if profile is None:
        raise NotFoundError(f"no customer with {'email ' + query['email'] if 'email' in query else 'that phone'}")
    return profile_view(profile)


@app.route("/customers/{profile_id}", methods=["GET"])
def get_customer(profile_id: str) -> dict[str, Any]:
    return profile_view(_profile(profile_id))


@app.route("/customers/{profile_id}/timeline", methods=["GET"])
def get_timeline(profile_id: str) -> dict[str, Any]:
    query = _query()
    profile = _profile(profile_id)
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise BadRequestError("limit must be a whole number") from None
    try:
        return timeline_page(wiring.profile_repository(), profile, limit, query.get("cursor"))
    except ValueError as error:
        raise BadRequestError(str(error)) from None


# --- segments ------------------------------------------------------------------------------------

class ContentTooLargeError(ChaliceViewError):
    """413: the answer would be larger than one response can carry (RFC 9110's "Content Too Large")."""

    STATUS_CODE = 413


def _document() -> SegmentDocument:
    try:
        return parse_segment(app.current_request.raw_body or b"")
    except SegmentInvalid as error:
        raise BadRequestError(str(error)) from None


def _limit(query: dict[str, str], default: int) -> int:
    try:
        return int(query.get("limit", str(default)))
    except ValueError:
        raise BadRequestError("limit must be a whole number") from None


class _Errors:
    """Domain refusals as HTTP answers: invalid 400, unknown (or another workspace's) 404, conflict 409,
    a direct export too large 413."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        if isinstance(error, SegmentInvalid | ValueError):
            raise BadRequestError(str(error)) from None
        if isinstance(error, service.SegmentNotFound | exports.ExportNotFound | flows.FlowNotFound
                      | templates.TemplateNotFound | proofs.ProfileNotFound | stats_query.StepNotFound
                      | reports.ReportNotFound):
            raise NotFoundError(str(error.args[0])) from None
        if isinstance(error, exports.ExportTooLarge):
            raise ContentTooLargeError(str(error)) from None
        if isinstance(error, service.SegmentConflict | flows.FlowConflict | templates.TemplateConflict):
            raise ConflictError(str(error)) from None


@app.route("/segments", methods=["GET"])
def list_segments() -> dict[str, Any]:
    return {"segments": service.list_segments(wiring.segment_store(), _workspace())}


def _start_run(workspace_id: str, reason: str) -> SegmentRun:
    """A recomputation of the workspace's segments (or the one under way): membership of a new or changed
    definition, and a refresh on request, are decided by the same fanned-out run as the schedule's."""
    return runs.start_runs(wiring.segment_runs(), wiring.segment_tasks(), [workspace_id], utc_now(),
                           settings().segment_items_per_share, reason)[workspace_id]


def _run_view(run: SegmentRun) -> dict[str, Any]:
    return {"run_id": run.run_id, "status": "done" if run.phase is RunPhase.DONE else "running",
            "phase": run.phase.value, "reason": run.reason, "computed_at": run.now.isoformat(),
            "shares": run.shares, "shares_sketched": run.sketched, "shares_evaluated": run.evaluated,
            "profiles": run.profiles, "entered": run.entered, "exited": run.exited,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "follow_up": run.rerun, "next_run_id": run.next_run_id}


@app.route("/segments", methods=["POST"])
def create_segment() -> Response:
    workspace_id = _workspace()
    with _Errors():
        document, chosen_id = parse_new_segment(app.current_request.raw_body or b"")
        record = service.create(wiring.segment_store(), workspace_id, document, utc_now(), chosen_id)
    view = service.segment_view(wiring.segment_store(), workspace_id, record.segment_id)
    view["run"] = _run_view(_start_run(workspace_id, f"created {record.segment_id}"))
    return Response(body=view, status_code=201, headers={"Location": f"/segments/{record.segment_id}"})


@app.route("/segments/preview", methods=["POST"])
def preview_segment() -> dict[str, Any]:
    workspace_id = _workspace()
    document = _document()
    with _Errors():
        return service.preview(wiring.segment_store(), wiring.segment_runs(), workspace_id, document, utc_now())


# A literal path beside /segments/{segment_id}: API Gateway and chalice's local router both prefer the
# literal, and no segment id can be "settings" (custom ids are seg_..., built-ins builtin:...).
@app.route("/segments/settings", methods=["GET"])
def get_segment_settings() -> dict[str, int]:
    return builtin_settings.view(wiring.segment_store().settings(_workspace()))


@app.route("/segments/settings", methods=["PUT"])
def replace_segment_settings() -> dict[str, int]:
    workspace_id = _workspace()
    with _Errors():
        chosen = builtin_settings.parse_settings(app.current_request.raw_body or b"")
    return builtin_settings.replace_settings(wiring.segment_store(), workspace_id, chosen)


@app.route("/segments/{segment_id}", methods=["GET"])
def get_segment(segment_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        return service.segment_view(wiring.segment_store(), workspace_id, segment_id)


@app.route("/segments/{segment_id}", methods=["PUT"])
def replace_segment(segment_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    document = _document()
    with _Errors():
        service.replace(wiring.segment_store(), workspace_id, segment_id, document, utc_now())
        view = service.segment_view(wiring.segment_store(), workspace_id, segment_id)
    view["run"] = _run_view(_start_run(workspace_id, f"changed {segment_id}"))
    return view


@app.route("/segments/{segment_id}", methods=["DELETE"])
def delete_segment(segment_id: str) -> Response:
    workspace_id = _workspace()
    with _Errors():
        service.delete(wiring.segment_store(), workspace_id, segment_id)
    return Response(body="", status_code=204)


@app.route("/segments/{segment_id}/recompute", methods=["POST"])
def recompute_segment(segment_id: str) -> Response:
    """Every segment of the workspace is recomputed together (they refer to each other, and the cost is the
    one scan): 202 with the run to follow at /segment-runs/{run_id}."""
    workspace_id = _workspace()
    with _Errors():
        service.segment_view(wiring.segment_store(), workspace_id, segment_id)  # 404 for an unknown segment
    run = _start_run(workspace_id, f"requested for {segment_id}")
    return Response(body=_run_view(run), status_code=202, headers={"Location": f"/segment-runs/{run.run_id}"})


@app.route("/segment-runs/{run_id}", methods=["GET"])
def get_segment_run(run_id: str) -> dict[str, Any]:
    run = wiring.segment_runs().get(_workspace(), run_id)
    if run is None:
        raise NotFoundError(f"no segment run {run_id}")
    return _run_view(run)


@app.route("/segments/{segment_id}/members", methods=["GET"])
def segment_members(segment_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    query = _query()
    limit = _limit(query, 100)
    with _Errors():
        return service.members_page(wiring.segment_store(), wiring.profile_repository(), workspace_id, segment_id,
                                    limit, query.get("cursor"))


@app.route("/segments/{segment_id}/export", methods=["GET"])
def export_segment(segment_id: str) -> Response:
    workspace_id = _workspace()
    with _Errors():
        options = exports.options_from_query(_query())
        body = exports.direct_export(wiring.segment_store(), wiring.profile_repository(), workspace_id, segment_id,
                                     options)
    return Response(body=body, status_code=200, headers={
        "Content-Type": exports.CONTENT_TYPES[options.format],
        "Content-Disposition": f'attachment; filename="{exports.download_name(segment_id, options)}"'})


@app.route("/segments/{segment_id}/exports", methods=["POST"])
def start_segment_export(segment_id: str) -> Response:
    workspace_id = _workspace()
    with _Errors():
        options = exports.options_from_body(app.current_request.raw_body or b"")
        job = exports.start_export(wiring.export_jobs(), wiring.export_queue(), wiring.segment_store(), workspace_id,
                                   segment_id, options, utc_now())
    return Response(body=exports.export_view(job, wiring.export_files(), utc_now()), status_code=202,
                    headers={"Location": f"/segments/{segment_id}/exports/{job.export_id}"})


@app.route("/segments/{segment_id}/exports/{export_id}", methods=["GET"])
def get_segment_export(segment_id: str, export_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        job = exports.export_job(wiring.export_jobs(), workspace_id, segment_id, export_id)
    return exports.export_view(job, wiring.export_files(), utc_now())


# --- reporting currency (docs/currency.md) ------------------------------------------------------------

@app.route("/settings/currency", methods=["GET"])
def get_currency_settings() -> dict[str, Any]:
    return reporting.settings_view(wiring.currency_store().settings(_workspace()))


@app.route("/settings/currency", methods=["PUT"])
def replace_currency_settings() -> Response:
    """202: the settings are held, and a job re-derives every profile's figures at them (follow it at
    /settings/currency/jobs/{job_id}); 409 when they changed meanwhile."""
    workspace_id = _workspace()
    try:
        request = reporting.parse_settings(app.current_request.raw_body or b"")
    except reporting.CurrencySettingsInvalid as error:
        raise BadRequestError(str(error)) from None
    shares = runs.shares_for(wiring.segment_runs().indexed_profiles(), settings().segment_items_per_share)
    try:
        held, job = reporting.replace_settings(wiring.currency_store(), wiring.currency_tasks(), workspace_id,
                                               request, utc_now(), shares)
    except ConcurrentUpdate:
        raise ConflictError("the currency settings changed meanwhile: read them again and retry") from None
    return Response(body={**reporting.settings_view(held), "job": reporting.job_view(job)}, status_code=202,
                    headers={"Location": f"/settings/currency/jobs/{job.job_id}"})


@app.route("/settings/currency/jobs/{job_id}", methods=["GET"])
def get_currency_job(job_id: str) -> dict[str, Any]:
    job = wiring.currency_store().job(_workspace(), job_id)
    if job is None:
        raise NotFoundError(f"no currency job {job_id}")
    return reporting.job_view(job)


@app.route("/settings/predictions", methods=["GET"])
def get_prediction_settings() -> dict[str, Any]:
    workspace_id = _workspace()
    store = wiring.prediction_store()
    return prediction_settings.settings_view(store.settings(workspace_id), store.fit(workspace_id))


@app.route("/settings/predictions", methods=["PUT"])
def replace_prediction_settings() -> dict[str, Any]:
    """The settings apply from the workspace's next scheduled fit (docs/predictions-in-product.md)."""
    workspace_id = _workspace()
    try:
        chosen = prediction_settings.parse_settings(app.current_request.raw_body or b"")
    except prediction_settings.PredictionSettingsInvalid as error:
        raise BadRequestError(str(error)) from None
    store = wiring.prediction_store()
    store.put_settings(workspace_id, chosen)
    return prediction_settings.settings_view(chosen, store.fit(workspace_id))


@app.route("/products/{product}/related", methods=["GET"])
def get_related_products(product: str) -> dict[str, Any]:
    """The products bought by the same shoppers, from the last daily run (docs/affinity.md)."""
    workspace_id = _workspace()
    with _Errors():
        query = parse_query(_query())
    try:
        found = find_product(wiring.affinity_store(), workspace_id, product)
    except ProductNotFound as error:
        raise NotFoundError(str(error)) from None
    return related_view(found, query)


# --- flows, templates, messaging settings (docs/flows.md, docs/messaging.md) ---------------------------------

def _body() -> dict[str, Any]:
    with _Errors():
        return flows.json_body(app.current_request.raw_body)


def _held_version() -> int | None:
    with _Errors():
        return flows.expected_version(app.current_request.headers.get("if-match"))


@app.route("/flows", methods=["GET"])
def list_flows() -> dict[str, Any]:
    return {"flows": [flows.flow_summary(r) for r in wiring.flow_catalogue().list_flows(_workspace())]}


@app.route("/flows", methods=["POST"])
def create_flow() -> Response:
    workspace_id = _workspace()
    with _Errors():
        record = flows.create(wiring.flow_catalogue(), workspace_id, _body(), utc_now())
    return Response(body=flows.flow_view(record), status_code=201, headers={"Location": f"/flows/{record.flow_id}"})


@app.route("/flows/backtest", methods=["POST"])
def backtest_flow() -> dict[str, Any]:
    """What a flow (saved, built-in or a definition) would have done over the workspace's last days; nothing is
    sent. Bounded by the API's time limit (crm.flows.backtests)."""
    from crm.flows import backtests  # the replay engine: only this route needs it (cold starts)

    workspace_id = _workspace()
    with _Errors():
        request = backtests.parse_request(_body())
        flow = backtests.flow_to_test(wiring.flow_catalogue(), workspace_id, request, utc_now())
        answer = backtests.backtest_workspace(
            flow, request.days, utc_now(), timelines=wiring.profile_repository(), segments=wiring.segment_store(),
            messaging=wiring.messaging_store(), suppressions=wiring.suppressions(),
            budget_seconds=backtests.API_BUDGET_SECONDS)
    return answer.model_dump(mode="json")


@app.route("/flows/{flow_id}", methods=["GET"])
def get_flow(flow_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        return flows.flow_view(flows.get(wiring.flow_catalogue(), workspace_id, flow_id))


@app.route("/flows/{flow_id}", methods=["PUT"])
def replace_flow(flow_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        record = flows.replace(wiring.flow_catalogue(), workspace_id, flow_id, _body(), utc_now(), _held_version())
    return flows.flow_view(record)


@app.route("/flows/{flow_id}", methods=["DELETE"])
def delete_flow(flow_id: str) -> Response:
    """A custom flow is deleted; a built-in one is reset to its default draft."""
    workspace_id = _workspace()
    with _Errors():
        flows.delete(wiring.flow_catalogue(), workspace_id, flow_id, _held_version())
    return Response(body="", status_code=204)


@app.route("/flows/{flow_id}/status", methods=["PUT"])
def set_flow_status(flow_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        record = flows.set_status(wiring.flow_catalogue(), wiring.messaging_store(), workspace_id, flow_id, _body(),
                                  utc_now(), _held_version())
    return flows.flow_view(record)


@app.route("/flows/{flow_id}/runs", methods=["GET"])
def flow_runs(flow_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        return proofs.runs_of(wiring.flow_catalogue(), wiring.flow_runs(), wiring.profile_repository(), workspace_id,
                              flow_id, _query().get("profile_id"))


@app.route("/flows/{flow_id}/stats", methods=["GET"])
def get_flow_stats(flow_id: str) -> dict[str, Any]:
    """What the flow did and brought in over ?from=&to= (docs/flow-stats.md)."""
    return _flow_stats(flow_id, None)


@app.route("/flows/{flow_id}/steps/{step_id}/stats", methods=["GET"])
def get_flow_step_stats(flow_id: str, step_id: str) -> dict[str, Any]:
    return _flow_stats(flow_id, step_id)


def _flow_stats(flow_id: str, step_id: str | None) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        report = stats_query.flow_stats(wiring.flow_catalogue(), wiring.flow_counters(), wiring.split_winners(),
                                        wiring.currency_store(), workspace_id, flow_id, _query(),
                                        utc_now().date(), step_id)
    return stats_query.report_view(report)


@app.route("/reports/{name}", methods=["GET"])
def get_report(name: str) -> dict[str, Any]:
    """One report's data and its Vega-Lite chart over ?from=&to=&interval= (docs/reports.md)."""
    workspace_id = _workspace()
    with _Errors():
        report = reports.build(wiring.report_source(), workspace_id, name, _query(), utc_now())
    return reports.report_view(report)


@app.route("/flows/{flow_id}/test-send", methods=["POST"])
def test_send_flow(flow_id: str) -> dict[str, Any]:
    """One email step rendered (a real profile or the sample shopper) and sent to one address, as a test."""
    workspace_id = _workspace()
    try:
        with _Errors():
            return proofs.send_proof(wiring.flow_catalogue(), wiring.messaging_store(), wiring.profile_repository(),
                                     wiring.email_sender(), wiring.sender_identities(), workspace_id, flow_id, _body())
    except ClientError as error:
        # SES's refusals of this one message (a sandboxed account's unverified recipient, a paused account).
        if error.response["Error"]["Code"] not in _SES_REFUSALS:
            raise
        raise ConflictError(f"SES refused the test: {error.response['Error'].get('Message', '')}") from None


_SES_REFUSALS = frozenset({"MessageRejected", "MailFromDomainNotVerifiedException", "AccountSuspendedException",
                           "SendingPausedException", "BadRequestException"})


@app.route("/templates", methods=["GET"])
def list_templates() -> dict[str, Any]:
    listed = wiring.messaging_store().list_templates(_workspace())
    return {"templates": [templates.template_summary(r) for r in listed]}


@app.route("/templates", methods=["POST"])
def create_template() -> Response:
    workspace_id = _workspace()
    with _Errors():
        record = templates.create_template(wiring.messaging_store(), workspace_id, _body(), utc_now())
    return Response(body=templates.template_view(record), status_code=201,
                    headers={"Location": f"/templates/{record.template_id}"})


@app.route("/templates/{template_id}", methods=["GET"])
def get_template(template_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        return templates.template_view(templates.get_template(wiring.messaging_store(), workspace_id, template_id))


@app.route("/templates/{template_id}", methods=["PUT"])
def replace_template(template_id: str) -> dict[str, Any]:
    workspace_id = _workspace()
    with _Errors():
        record = templates.replace_template(wiring.messaging_store(), wiring.flow_catalogue(), workspace_id,
                                            template_id, _body(), utc_now())
    return templates.template_view(record)


@app.route("/templates/{template_id}", methods=["DELETE"])
def delete_template(template_id: str) -> Response:
    """A custom template is deleted; a built-in one is reset to its default."""
    workspace_id = _workspace()
    with _Errors():
        templates.delete_template(wiring.messaging_store(), wiring.flow_catalogue(), workspace_id, template_id)
    return Response(body="", status_code=204)


@app.route("/settings/messaging", methods=["GET"])
def get_messaging_settings() -> dict[str, Any]:
    held = wiring.messaging_store().messaging_settings(_workspace())
    return templates.settings_view(held, templates.sender_verification(wiring.sender_identities(),
                                                                       held.from_address, request=False))


@app.route("/settings/messaging", methods=["PUT"])
def replace_messaging_settings() -> dict[str, Any]:
    """The settings are saved; SES is asked to verify the from address unless it (or its domain) is an identity."""
    workspace_id = _workspace()
    with _Errors():
        return templates.replace_settings(wiring.messaging_store(), wiring.sender_identities(), workspace_id,
                                          _body())
