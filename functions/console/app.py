"""The marketer's console (docs/console.md): server-rendered pages of the workspace a signed-in user belongs to.

Each page: the session cookie opened and its user checked in Cognito (crm.adapters.users), a form's CSRF token
checked, a viewer refused anything that changes data, then one crm.console.pages function and a template. No
stack trace reaches the browser: an error renders a page that says what to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger
from chalice import Chalice, Response
from crm import api_keys, reporting, wiring
from crm.adapters.users import PasswordRejected, SignInRefused, UserExists
from crm.clock import utc_now
from crm.console import builder, charts, flow_page, pages, render, template_page
from crm.console import session as sessions
from crm.console import settings as console_settings
from crm.console.invitation import invitation_of, invitation_token, invitation_url
from crm.console.session import ROLES, Session
from crm.flows import stats_query
from crm.flows.stats_query import StatsQueryInvalid
from crm.reports.query import ReportQueryInvalid
from crm.segments import service as segment_service
from crm.segments.definition import SegmentInvalid, parse_segment

app = Chalice(app_name="crm-console")
logger = Logger(service="console")
FORM = ["application/x-www-form-urlencoded"]
STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {"htmx-2.0.11.min.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8",
                "template-preview.js": "text/javascript; charset=utf-8"}
# Scripts and styles from this console only, no inline script or style, no frames, forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "frame-src 'self'",  # the template editor's preview of the rendered email
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # an invitation link carries its token in the query
    "X-Frame-Options": "DENY",
}
HTML = "text/html; charset=utf-8"


class Refused(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def _root() -> str:
    """The console's URL path: /console locally, /<stage>/console behind API Gateway's stage."""
    request = app.current_request
    event = request.to_original_event()
    full, routed = str(request.context.get("path") or ""), str(event.get("path") or "")
    stage = full[: -len(routed)] if routed and full.endswith(routed) else ""
    return f"{stage}/console"


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Content-Type": HTML, "Cache-Control": "no-store", **(extra or {})}


def _html(template: str, status: int = 200, cookie: str | None = None, **context: Any) -> Response:
    context.setdefault("root", _root())
    context.setdefault("session", None)
    context.setdefault("csrf", None)
    body = render.page(template, **context)
    return Response(body=body, status_code=status, headers=_headers({"Set-Cookie": cookie} if cookie else None))


def _redirect(location: str, cookie: str | None = None) -> Response:
    headers = _headers({"Location": location})
    if cookie:
        headers["Set-Cookie"] = cookie
    return Response(body="", status_code=303, headers=headers)


def _cookies() -> dict[str, str]:
    return sessions.read_cookies(app.current_request.headers.get("cookie"))


def _form() -> dict[str, str]:
    raw = app.current_request.raw_body or b""
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _session() -> Session | None:
    """The signed-in session, if the cookie is valid and its user is still enabled in the pool (whose role
    counts: a role changed by an administrator applies from the next request)."""
    keys = wiring.console_session_keys().keys()
    found = sessions.open_session(_cookies().get(sessions.SESSION_COOKIE), keys, utc_now())
    if found is None:
        return None
    user = wiring.console_users().user(found.email)
    if user is None or not user.enabled or user.workspace_id != found.workspace_id:
        return None
    return found.model_copy(update={"role": user.role})


def _check_csrf(holder_id: str, form: dict[str, str]) -> None:
    token = form.get("csrf_token") or app.current_request.headers.get("x-csrf-token")
    if not sessions.csrf_valid(token, holder_id, wiring.console_session_keys().keys()):
        raise Refused(403, "Form refused", "This form did not come from this console page (its security token is "
                                           "missing or out of date): reload the page and try again.")


def _page(view: Callable[..., Response]) -> Callable[..., Response]:
    """A view whose refusals and failures are pages, never a stack trace; one log line per request."""

    @wraps(view)
    def handled(*args: Any, **kwargs: Any) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = view(*args, **kwargs)
            status = response.status_code
            return response
        except Refused as refused:
            status = refused.status
            return _html("error.html", status=refused.status, title=refused.title, message=refused.message)
        except Exception:
            logger.exception("console page failed")
            return _html("error.html", status=500, title="Something went wrong",
                         message="The console could not load this page: the error is logged. Try again in a "
                                 "moment; if it persists, tell whoever runs the CRM.")
        finally:
            request = app.current_request
            logger.info("console request", extra={
                "method": request.method, "route": request.path, "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1)})
    return handled


def _signed_in(view: Callable[..., Response]) -> Callable[..., Response]:
    """A page for signed-in users: the others go to the sign-in page; a POST needs its session's CSRF token."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Response:
        session = _session()
        if session is None:
            if app.current_request.method != "GET":
                raise Refused(403, "Signed out", "Your session has ended: sign in again.")
            return _redirect(f"{_root()}/sign-in")
        return view(session, *args, **kwargs)
    return guarded


def _can_change(session: Session, form: dict[str, str]) -> None:
    _check_csrf(session.session_id, form)
    if not session.can_change:
        raise Refused(403, "Not allowed", "You are a viewer: viewers see everything and change nothing. Ask an "
                                          "editor, or whoever runs the CRM, for the editor role.")


def _context(session: Session, active: str) -> dict[str, Any]:
    return {"session": session, "active": active,
            "csrf": sessions.csrf_token(session.session_id, wiring.console_session_keys().keys())}


# --- signing in ------------------------------------------------------------------------------------


def _visitor() -> tuple[sessions.Visitor, str | None]:
    """The visitor id the sign-in forms' CSRF token derives from, and the cookie to set when it is new."""
    now = utc_now()
    keys = wiring.console_session_keys().keys()
    found = sessions.open_visitor(_cookies().get(sessions.VISITOR_COOKIE), keys, now)
    if found is not None:
        return found, None
    visitor = sessions.new_visitor(now)
    return visitor, sessions.cookie(sessions.VISITOR_COOKIE, sessions.seal_visitor(visitor, keys), _root(),
                                    visitor.expires_at, now)


def _visitor_form(template: str, status: int = 200, **context: Any) -> Response:
    visitor, cookie = _visitor()
    csrf = sessions.csrf_token(visitor.visitor_id, wiring.console_session_keys().keys())
    return _html(template, status=status, cookie=cookie, csrf=csrf, **context)


def _start_session(user_email: str, workspace_id: str, role: sessions.Role) -> Response:
    now = utc_now()
    session = sessions.new_session(user_email, workspace_id, role, now)
    sealed = sessions.seal_session(session, wiring.console_session_keys().keys())
    return _redirect(_root(), sessions.cookie(sessions.SESSION_COOKIE, sealed, _root(), session.expires_at, now))


@app.route("/console/sign-in", methods=["GET"])
@_page
def sign_in_page() -> Response:
    return _visitor_form("sign_in.html", title="Sign in", email="", problem=None, notice=None)


@app.route("/console/sign-in", methods=["POST"], content_types=FORM)
@_page
def sign_in() -> Response:
    form = _form()
    visitor, _ = _visitor()
    _check_csrf(visitor.visitor_id, form)
    email = form.get("email", "").strip().lower()
    try:
        user = wiring.console_users().sign_in(email, form.get("password", ""))
    except SignInRefused as refused:
        return _visitor_form("sign_in.html", status=401, title="Sign in", email=email, problem=str(refused),
                             notice=None)
    logger.info("console sign-in", extra={"workspace_id": user.workspace_id, "role": user.role})
    return _start_session(user.email, user.workspace_id, user.role)


@app.route("/console/sign-out", methods=["POST"], content_types=FORM)
@_page
def sign_out() -> Response:
    session = _session()
    if session is not None:
        _check_csrf(session.session_id, _form())
    return _redirect(f"{_root()}/sign-in", sessions.cookie(sessions.SESSION_COOKIE, "", _root(), None, utc_now()))


@app.route("/console/invitation", methods=["GET"])
@_page
def invitation_page() -> Response:
    token = (app.current_request.query_params or {}).get("token")
    invited = invitation_of(token)
    if invited is None:
        raise Refused(400, "Invitation not recognised", "This invitation link is incomplete: copy the whole link "
                                                        "from the invitation, or ask for a new one.")
    return _visitor_form("invitation.html", title="Choose your password", token=token, email=invited[0],
                         problem=None)


@app.route("/console/invitation", methods=["POST"], content_types=FORM)
@_page
def accept_invitation() -> Response:
    form = _form()
    visitor, _ = _visitor()
    _check_csrf(visitor.visitor_id, form)
    invited = invitation_of(form.get("token"))
    if invited is None:
        raise Refused(400, "Invitation not recognised", "This invitation link is incomplete: ask for a new one.")
    email, temporary = invited
    problem = None
    if form.get("password", "") != form.get("confirm", ""):
        problem = "The two passwords differ: type the same password twice."
    else:
        try:
            user = wiring.console_users().accept(email, temporary, form.get("password", ""))
        except (SignInRefused, PasswordRejected) as refused:
            problem = str(refused)
        else:
            return _start_session(user.email, user.workspace_id, user.role)
    return _visitor_form("invitation.html", status=400, title="Choose your password", token=form.get("token"),
                         email=email, problem=problem)


# --- pages -------------------------------------------------------------------------------------------


def _flow_deps() -> pages.FlowDeps:
    return pages.FlowDeps(wiring.flow_catalogue(), wiring.flow_counters(), wiring.split_winners(),
                          wiring.currency_store())


@app.route("/console", methods=["GET"])
@_page
@_signed_in
def dashboard(session: Session) -> Response:
    query = dict(app.current_request.query_params or {})
    try:
        board = pages.dashboard(wiring.report_source(), _flow_deps(), wiring.segment_store(), session.workspace_id,
                                {k: v for k, v in query.items() if k in ("from", "to") and v}, utc_now())
    except (ReportQueryInvalid, StatsQueryInvalid) as invalid:
        raise Refused(400, "Range not shown", f"{invalid}: choose another range.") from None
    points, by = board.revenue.points, _interval(board.revenue.points)
    return _html("dashboard.html", title="Dashboard", board=board, **_context(session, "dashboard"),
                 revenue_chart=charts.bar_chart(f"Revenue by {by}", [(p.start, p.revenue) for p in points], "{:,.2f}"),
                 orders_chart=charts.bar_chart(f"Orders by {by}", [(p.start, p.orders) for p in points]),
                 repeat_chart=charts.bar_chart(
                     f"Repeat rate by {by} (%)",
                     [(p.start, None if p.repeat_rate is None else p.repeat_rate * 100) for p in board.repeat.points],
                     "{:,.1f}"))


def _interval(points: Any) -> str:
    if len(points) < 2:
        return "period"
    days = (points[1].start - points[0].start).days
    return "day" if days == 1 else "week" if days == 7 else "month"


@app.route("/console/customers", methods=["GET"])
@_page
@_signed_in
def customers(session: Session) -> Response:
    asked = (app.current_request.query_params or {}).get("q")
    result = None if asked is None else pages.search_customers(wiring.profile_repository(), session.workspace_id,
                                                                asked)
    return _html("customers.html", title="Customers", result=result, **_context(session, "customers"))


def _customer(session: Session, profile_id: str) -> pages.Customer:
    query = app.current_request.query_params or {}
    try:
        found = pages.customer(wiring.profile_repository(), wiring.segment_store(), _flow_deps(), wiring.flow_runs(),
                               session.workspace_id, profile_id, query.get("cursor"), query.get("orders"))
    except ValueError as error:
        raise Refused(400, "Page not found", f"{error}: open the customer again from the search.") from None
    if found is None:
        raise Refused(404, "No such customer", "No customer of this workspace has this id: search for them again.")
    return found


@app.route("/console/customers/{profile_id}", methods=["GET"])
@_page
@_signed_in
def customer(session: Session, profile_id: str) -> Response:
    found = _customer(session, profile_id)
    return _html("customer.html", title=found.profile.email or profile_id, customer=found,
                 **_context(session, "customers"))


@app.route("/console/customers/{profile_id}/timeline", methods=["GET"])
@_page
@_signed_in
def customer_timeline(session: Session, profile_id: str) -> Response:
    """The next page of a customer's timeline, for htmx to put in place of the "Older events" link."""
    found = _customer(session, profile_id)
    return _html("timeline.html", timeline=found.timeline, **_context(session, "customers"))


@app.route("/console/customers/{profile_id}/orders", methods=["GET"])
@_page
@_signed_in
def customer_orders(session: Session, profile_id: str) -> Response:
    """The next page of a customer's orders, for htmx to put in place of the "Older orders" link."""
    repository = wiring.profile_repository()
    profile = repository.get_profile(session.workspace_id, profile_id)
    if profile is None:
        raise Refused(404, "No such customer", "No customer of this workspace has this id: search for them again.")
    try:
        orders = pages.customer_orders(repository, profile, (app.current_request.query_params or {}).get("orders"))
    except ValueError as error:
        raise Refused(400, "Page not found", f"{error}: open the customer again from the search.") from None
    return _html("orders.html", orders=orders, **_context(session, "customers"))


def _segments_page(session: Session, status: int = 200, **context: Any) -> Response:
    listed = segment_service.list_segments(wiring.segment_store(), session.workspace_id)
    context = {"saved": None, "problem": None, "draft_name": "", "count": None, "count_problem": None,
               **_builder_context(listed, context.pop("built", None) or builder.start(SAMPLE_DEFINITION)), **context}
    growth = pages.segment_growth(wiring.segment_store(), session.workspace_id)
    return _html("segments.html", status=status, title="Segments", segments=listed, growth=growth, **context,
                 **_context(session, "segments"))


# What a marketer's download carries (any of crm.segments.exports' fields can be asked for in the URL).
EXPORT_FIELDS = ("email", "phone", "first_name", "last_name", "orders_count", "total_spent", "last_order_at")
SAMPLE_DEFINITION = json.dumps({"all": [{"field": "orders_count", "op": "gte", "value": 2}]}, indent=2)


@app.route("/console/segments", methods=["GET"])
@_page
@_signed_in
def segments(session: Session) -> Response:
    built = builder.start(SAMPLE_DEFINITION)
    count, problem = _count(session, "", built.definition)  # the builder's count from the first look
    return _segments_page(session, built=built, count=count, count_problem=problem)


@app.route("/console/segments", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def save_segment(session: Session) -> Response:
    from crm.segments import runs

    form = _form()
    _can_change(session, form)
    name, built = form.get("name", "").strip(), None
    try:
        built = builder.state(form)
        if not name:
            raise SegmentInvalid("name: give the segment a name")
        document = _draft(name, built.definition)
        record = segment_service.create(wiring.segment_store(), session.workspace_id, document, utc_now())
    except (SegmentInvalid, segment_service.SegmentConflict) as invalid:
        return _segments_page(session, status=400, problem=str(invalid), draft_name=name, built=built)
    from crm.config import settings

    runs.start_runs(wiring.segment_runs(), wiring.segment_tasks(), [session.workspace_id], utc_now(),
                    settings().segment_items_per_share, f"created {record.segment_id}")
    logger.info("console segment saved", extra={"workspace_id": session.workspace_id, "segment_id": record.segment_id})
    return _segments_page(session, saved=record.name)


def _draft(name: str, definition: str) -> Any:
    """The segment document a builder's form describes (SegmentInvalid naming what is wrong)."""
    try:
        parsed = json.loads(definition, parse_float=Decimal)
    except ValueError as error:
        raise SegmentInvalid(f"the definition is not JSON: {error}") from None
    return parse_segment({"name": name or "draft", "definition": parsed})


@app.route("/console/segments/preview", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def preview_segment(session: Session) -> Response:
    """How many customers a draft matches now (nothing saved): the count alone for htmx, else the whole page."""
    form = _form()
    _check_csrf(session.session_id, form)
    built = _built(form)
    count, problem = _count(session, form.get("name", "").strip(), built.definition)
    if app.current_request.headers.get("hx-request") == "true":
        return _html("segment_count.html", count=count, count_problem=problem)
    return _segments_page(session, count=count, count_problem=problem, draft_name=form.get("name", "").strip(),
                          built=built)


# --- the segment builder's form (crm.console.builder) -----------------------------------------------------


def _builder_context(listed: list[dict[str, Any]], built: builder.Builder) -> dict[str, Any]:
    from crm.models.consent import ConsentState

    return {"built": built, "choices": builder.choices(), "builder_label": builder.path_label,
            "segment_names": {s["id"]: s["name"] for s in listed},
            "consent_states": [state.value for state in ConsentState]}


def _built(form: dict[str, str], segment_ids: list[str] | None = None) -> builder.Builder:
    try:
        return builder.state(form, segment_ids)
    except SegmentInvalid as invalid:
        raise Refused(400, "Form not understood", f"{invalid}: reload the segments page.") from None


def _count(session: Session, name: str, definition: str) -> tuple[Any, str | None]:
    """How many customers a draft matches now, or the DSL's message."""
    try:
        return segment_service.preview(wiring.segment_store(), wiring.segment_runs(), session.workspace_id,
                                       _draft(name, definition), utc_now()), None
    except (SegmentInvalid, segment_service.SegmentConflict) as invalid:
        return None, str(invalid)


@app.route("/console/segments/builder", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def segment_builder(session: Session) -> Response:
    """The builder after a change or a button (add or remove a part, show typed JSON in the form), with the count
    its definition matches: the builder alone for htmx, else the whole page."""
    form = _form()
    _check_csrf(session.session_id, form)
    listed = segment_service.list_segments(wiring.segment_store(), session.workspace_id)
    built = _built(form, [s["id"] for s in listed])
    name = form.get("name", "").strip()
    count, problem = _count(session, name, built.definition)
    if app.current_request.headers.get("hx-request") == "true":
        return _html("segment_builder.html", count=count, count_problem=problem, **_builder_context(listed, built))
    return _segments_page(session, count=count, count_problem=problem, draft_name=name, built=built)


@app.route("/console/segments/{segment_id}", methods=["GET"])
@_page
@_signed_in
def segment(session: Session, segment_id: str) -> Response:
    store = wiring.segment_store()
    cursor = (app.current_request.query_params or {}).get("cursor")
    try:
        view = segment_service.segment_view(store, session.workspace_id, segment_id)
        members = segment_service.members_page(store, wiring.profile_repository(), session.workspace_id, segment_id,
                                               50, cursor)
    except segment_service.SegmentNotFound:
        raise Refused(404, "No such segment", "This workspace has no segment with this id.") from None
    except ValueError as error:
        raise Refused(400, "Page not found", f"{error}: open the segment again from the list.") from None
    return _html("segment.html", title=view["name"], segment=view, members=members["members"],
                 next_cursor=members["next_cursor"],
                 definition_json=json.dumps(view.get("definition"), indent=2, default=str),
                 export_fields=",".join(EXPORT_FIELDS),
                 **_context(session, "segments"))


@app.route("/console/segments/{segment_id}/export", methods=["GET"])
@_page
@_signed_in
def export_segment(session: Session, segment_id: str) -> Response:
    """The members as a CSV or JSON Lines download (?format=csv|jsonl), built at once: the asynchronous export
    of a larger segment is the API's (POST /segments/{id}/exports)."""
    from crm.segments import exports

    try:
        options = exports.options_from_query(dict(app.current_request.query_params or {}))
        body = exports.direct_export(wiring.segment_store(), wiring.profile_repository(), session.workspace_id,
                                     segment_id, options)
    except exports.ExportInvalid as invalid:
        raise Refused(400, "Export not made", str(invalid)) from None
    except exports.ExportTooLarge:
        raise Refused(413, "Too large to download here", "This segment is too large to download from the "
                                                         "console at once: export it through the API's "
                                                         "POST /segments/{id}/exports, which writes a file.") from None
    except segment_service.SegmentNotFound:
        raise Refused(404, "No such segment", "This workspace has no segment with this id.") from None
    return Response(body=body, status_code=200, headers={
        **SECURITY_HEADERS, "Content-Type": exports.CONTENT_TYPES[options.format], "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{exports.download_name(segment_id, options)}"'})


# --- a segment's asynchronous export (crm.segments.exports: the exports function writes the file) -----------


@app.route("/console/segments/{segment_id}/exports", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def start_segment_export(session: Session, segment_id: str) -> Response:
    """Queue an export of every member as CSV or JSON Lines (viewers too: it changes no data), then its page."""
    from crm.segments import exports

    form = _form()
    _check_csrf(session.session_id, form)
    try:
        options = exports.options_from_query({"format": form.get("format", "csv"), "fields": ",".join(EXPORT_FIELDS)})
        job = exports.start_export(wiring.export_jobs(), wiring.export_queue(), wiring.segment_store(),
                                   session.workspace_id, segment_id, options, utc_now())
    except exports.ExportInvalid as invalid:
        raise Refused(400, "Export not started", str(invalid)) from None
    except segment_service.SegmentNotFound:
        raise Refused(404, "No such segment", "This workspace has no segment with this id.") from None
    logger.info("console export started", extra={"workspace_id": session.workspace_id, "segment_id": segment_id,
                                                 "export_id": job.export_id})
    return _redirect(f"{_root()}/segments/{segment_id}/exports/{job.export_id}")


@app.route("/console/segments/{segment_id}/exports/{export_id}", methods=["GET"])
@_page
@_signed_in
def segment_export(session: Session, segment_id: str, export_id: str) -> Response:
    """An export's status; its download link once done (htmx asks again every few seconds until then)."""
    from crm.segments import exports

    try:
        job = exports.export_job(wiring.export_jobs(), session.workspace_id, segment_id, export_id)
    except exports.ExportNotFound:
        raise Refused(404, "No such export", "This segment has no export with this id: start a new one from "
                                             "the segment's page.") from None
    view = exports.export_view(job, wiring.export_files(), utc_now())
    try:
        name = segment_service.segment_view(wiring.segment_store(), session.workspace_id, segment_id)["name"]
    except segment_service.SegmentNotFound:
        name = segment_id  # deleted since: its export's file is still there
    return _html("segment_export.html", title=f"Export of {name}", export=view, segment_name=name,
                 waiting=view["status"] in ("queued", "running"), **_context(session, "segments"))


FLOWS_DAYS = 30


def _flows_page(session: Session, status: int = 200, **context: Any) -> Response:
    today = utc_now().date()
    first = today - timedelta(days=FLOWS_DAYS - 1)
    held = wiring.currency_store().settings(session.workspace_id)
    listed = pages.flows_earned(_flow_deps(), session.workspace_id, first, today, today)
    return _html("flows.html", status=status, title="Flows", flows=listed, first=first, last=today,
                 currency=held.reporting_currency if held else None,
                 **{"changed": None, "problem": None, **context}, **_context(session, "flows"))


@app.route("/console/flows", methods=["GET"])
@_page
@_signed_in
def flows_list(session: Session) -> Response:
    return _flows_page(session)


@app.route("/console/flows/status", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def set_flow_status(session: Session) -> Response:
    """"Go live" or "Back to draft": a flow goes live only once its templates and sender are ready (the message
    says what is missing)."""
    from crm.flows import manage as flows

    form = _form()
    _can_change(session, form)
    flow_id, status = form.get("flow_id", ""), form.get("status", "")
    try:
        record = flows.set_status(wiring.flow_catalogue(), wiring.messaging_store(), session.workspace_id, flow_id,
                                  {"status": status}, utc_now())
    except flows.FlowNotFound:
        raise Refused(404, "No such flow", "This workspace has no flow with this id.") from None
    except (flows.FlowConflict, ValueError) as refused:
        if form.get("back_to") == "flow":
            return _flow_page(session, flow_id, status=409, problem=str(refused))
        return _flows_page(session, status=409, problem=str(refused))
    logger.info("console flow status", extra={"workspace_id": session.workspace_id, "flow_id": flow_id,
                                              "status": record.status.value})
    said = "is live" if record.status.value == "live" else "is back to draft"
    if form.get("back_to") == "flow":
        return _flow_page(session, flow_id, changed=f"{record.definition.name} {said}.")
    return _flows_page(session, changed=f"{record.definition.name} {said}.")


# --- a flow's page and the templates (docs/console.md: "A flow", "Templates") ----------------------------


def _flow_page(session: Session, flow_id: str, status: int = 200, **context: Any) -> Response:
    """The flow's diagram with its steps' counts over the last 30 days, its editor, test send and backtest."""
    from crm.flows import manage as flows

    today = utc_now().date()
    first = today - timedelta(days=FLOWS_DAYS - 1)
    try:
        record = flows.get(wiring.flow_catalogue(), session.workspace_id, flow_id)
    except flows.FlowNotFound:
        raise Refused(404, "No such flow", "This workspace has no flow with this id: open it from the list.") from None
    report = stats_query.flow_stats(wiring.flow_catalogue(), wiring.flow_counters(), wiring.split_winners(),
                                    wiring.currency_store(), session.workspace_id, flow_id,
                                    {"from": first.isoformat(), "to": today.isoformat()}, today)
    messaging = wiring.messaging_store()
    listed = messaging.list_templates(session.workspace_id)
    names = {t.template_id: t.template.name for t in listed}
    context = {"changed": None, "problem": None, "field_problems": {}, "edits": {}, "sent": None,
               "send_problem": None, "send_to": "", "backtest": None, "backtest_problem": None,
               "backtest_days": stats_query.DEFAULT_DAYS, **context}
    return _html("flow.html", status=status, title=record.definition.name, flow=record, report=report,
                 first=first, last=today, steps=flow_page.diagram(record.definition, report.steps, names),
                 templates=flow_page.templates_by_channel(listed), delay_amount=flow_page.delay_amount,
                 trigger=flows.trigger_summary(record.definition),
                 not_ready=flows.readiness_problems(messaging, session.workspace_id, record.definition),
                 email_steps=flow_page.email_steps(record.definition, names),
                 **context, **_context(session, "flows"))


@app.route("/console/flows/{flow_id}", methods=["GET"])
@_page
@_signed_in
def flow(session: Session, flow_id: str) -> Response:
    """The flow's page; ``?backtest_days=N`` also runs the backtest over the last N days (nothing is sent)."""
    from crm.flows import backtests
    from crm.flows import manage as flows

    asked = (app.current_request.query_params or {}).get("backtest_days")
    if asked is None:
        return _flow_page(session, flow_id)
    try:
        request = backtests.parse_request({"flow_id": flow_id, "days": asked})
    except ValueError as invalid:
        return _flow_page(session, flow_id, status=400, backtest_problem=str(invalid), backtest_days=asked)
    try:
        tested = backtests.flow_to_test(wiring.flow_catalogue(), session.workspace_id, request, utc_now())
    except flows.FlowNotFound:
        raise Refused(404, "No such flow", "This workspace has no flow with this id: open it from the list.") from None
    answer = backtests.backtest_workspace(
        tested, request.days, utc_now(), timelines=wiring.profile_repository(), segments=wiring.segment_store(),
        messaging=wiring.messaging_store(), suppressions=wiring.suppressions(),
        budget_seconds=backtests.API_BUDGET_SECONDS)
    return _flow_page(session, flow_id, backtest=answer, backtest_days=request.days)


@app.route("/console/flows/{flow_id}", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def save_flow(session: Session, flow_id: str) -> Response:
    """The editor's delays and messages saved as the API's PUT /flows/{id} saves a definition (its checks, its
    version: a flow changed meanwhile is refused)."""
    from crm.flows import manage as flows
    from crm.flows.defaults import DefinitionInvalid

    form = _form()
    _can_change(session, form)
    try:
        current = flows.get(wiring.flow_catalogue(), session.workspace_id, flow_id)
    except flows.FlowNotFound:
        raise Refused(404, "No such flow", "This workspace has no flow with this id: open it from the list.") from None
    held = form.get("version", "")
    try:
        document = flow_page.edited_definition(current.definition, form)
        record = flows.replace(wiring.flow_catalogue(), session.workspace_id, flow_id, document, utc_now(),
                               flows.expected_version(held))
    except flow_page.EditRefused as refused:
        return _flow_page(session, flow_id, status=400, field_problems=refused.problems, edits=form,
                          problem="Nothing was saved: correct the fields marked below.")
    except DefinitionInvalid as invalid:
        step = flow_page.step_of_problem(current.definition.model_dump(mode="json"), str(invalid))
        return _flow_page(session, flow_id, status=400, field_problems={step: str(invalid)} if step else {},
                          edits=form, problem=f"Nothing was saved: {invalid}")
    except flows.FlowConflict as conflict:
        return _flow_page(session, flow_id, status=409, problem=f"Nothing was saved: {conflict}")
    logger.info("console flow saved", extra={"workspace_id": session.workspace_id, "flow_id": flow_id,
                                             "version": record.version})
    return _flow_page(session, flow_id, changed=f"Saved: version {record.version}.")


@app.route("/console/flows/{flow_id}/test-send", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def test_send(session: Session, flow_id: str) -> Response:
    """One email step sent to the address typed, marked as a test, as the API's POST /flows/{id}/test-send."""
    from botocore.exceptions import ClientError
    from crm.flows import manage as flows
    from crm.flows import proofs
    from crm.flows.defaults import DefinitionInvalid

    form = _form()
    _can_change(session, form)
    to = form.get("to", "").strip()
    document = {"to": to, **({"step_id": form["step_id"]} if form.get("step_id") else {})}
    try:
        sent = proofs.send_proof(wiring.flow_catalogue(), wiring.messaging_store(), wiring.profile_repository(),
                                 wiring.email_sender(), wiring.sender_identities(), session.workspace_id, flow_id,
                                 document)
    except flows.FlowNotFound:
        raise Refused(404, "No such flow", "This workspace has no flow with this id: open it from the list.") from None
    except (DefinitionInvalid, proofs.ProfileNotFound, flows.FlowConflict) as refused:
        return _flow_page(session, flow_id, status=400, send_problem=str(refused), send_to=to)
    except ClientError as error:
        if error.response["Error"]["Code"] not in SES_REFUSALS:
            raise
        return _flow_page(session, flow_id, status=409, send_to=to,
                          send_problem=f"SES refused the test: {error.response['Error'].get('Message', '')}")
    logger.info("console test send", extra={"workspace_id": session.workspace_id, "flow_id": flow_id})
    return _flow_page(session, flow_id, sent=sent, send_to=to)


# SES's refusals of one message (a sandboxed account's unverified recipient, a paused account), as the API's.
SES_REFUSALS = frozenset({"MessageRejected", "MailFromDomainNotVerifiedException", "AccountSuspendedException",
                          "SendingPausedException", "BadRequestException"})


@app.route("/console/templates", methods=["GET"])
@_page
@_signed_in
def templates_list(session: Session) -> Response:
    from crm.messaging import manage as templates

    listed = [templates.template_summary(r) for r in wiring.messaging_store().list_templates(session.workspace_id)]
    return _html("templates.html", title="Templates", templates=listed, **_context(session, "templates"))


def _template_page(session: Session, template_id: str, status: int = 200, **context: Any) -> Response:
    from crm.messaging import manage as templates

    try:
        record = templates.get_template(wiring.messaging_store(), session.workspace_id, template_id)
    except templates.TemplateNotFound:
        raise Refused(404, "No such template", "This workspace has no template with this id: open it from the "
                                               "list.") from None
    draft = context.pop("draft", None) or template_page.form_of(record.template)
    shown = context.pop("preview", None) or template_page.preview(
        wiring.profile_repository(), wiring.messaging_store().messaging_settings(session.workspace_id),
        session.workspace_id, record.template.channel, draft, context.get("customer"))
    return _html("template.html", status=status, title=record.template.name, record=record, draft=draft,
                 preview=shown, **{"saved": None, "problem": None, "customer": "", **context},
                 **_context(session, "templates"))


@app.route("/console/templates/{template_id}", methods=["GET"])
@_page
@_signed_in
def template(session: Session, template_id: str) -> Response:
    return _template_page(session, template_id)


@app.route("/console/templates/{template_id}", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def save_template(session: Session, template_id: str) -> Response:
    """The draft saved as the API's PUT /templates/{id} saves it (the same checks: a refusal names the line)."""
    from crm.flows.defaults import DefinitionInvalid
    from crm.messaging import manage as templates

    form = _form()
    _can_change(session, form)
    channel = _template_channel(session, template_id)
    try:
        record = templates.replace_template(wiring.messaging_store(), wiring.flow_catalogue(), session.workspace_id,
                                            template_id, template_page.draft_document(channel, form), utc_now())
    except (DefinitionInvalid, templates.TemplateConflict) as refused:
        return _template_page(session, template_id, status=400, draft=form, customer=form.get("customer", ""),
                              problem=f"Nothing was saved: {refused}")
    logger.info("console template saved", extra={"workspace_id": session.workspace_id, "template_id": template_id})
    return _template_page(session, template_id, saved=record.template.name, customer=form.get("customer", ""))


def _template_channel(session: Session, template_id: str) -> str:
    from crm.messaging import manage as templates

    try:
        return templates.get_template(wiring.messaging_store(), session.workspace_id, template_id).template.channel
    except templates.TemplateNotFound:
        raise Refused(404, "No such template", "This workspace has no template with this id: open it from the "
                                               "list.") from None


def _draft_preview(session: Session, template_id: str, form: dict[str, str]) -> template_page.Preview:
    return template_page.preview(wiring.profile_repository(),
                                 wiring.messaging_store().messaging_settings(session.workspace_id),
                                 session.workspace_id, _template_channel(session, template_id), form,
                                 form.get("customer"))


@app.route("/console/templates/{template_id}/preview", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def preview_template(session: Session, template_id: str) -> Response:
    """The draft's problems, subject and text as it stands (nothing saved): the fragment alone for htmx, else
    the whole page. Viewers may preview: it changes nothing."""
    form = _form()
    _check_csrf(session.session_id, form)
    shown = _draft_preview(session, template_id, form)
    if app.current_request.headers.get("hx-request") == "true":
        return _html("template_check.html", preview=shown, template_id=template_id)
    return _template_page(session, template_id, draft=form, preview=shown, customer=form.get("customer", ""))


# The rendered email is shown in a frame of the editor: its own inline styles (a send's CSS is inlined) and
# remote images allowed there, no script, no form, no link followed inside the console's origin.
RENDERED_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; font-src https: data:; "
                   "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-popups")


@app.route("/console/templates/{template_id}/rendered", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def rendered_template(session: Session, template_id: str) -> Response:
    """The draft's HTML as a send renders it, for the editor's preview frame (the form posts into it)."""
    form = _form()
    _check_csrf(session.session_id, form)
    shown = _draft_preview(session, template_id, form)
    body = shown.html if shown.html is not None else render.page("template_rendered_problem.html", preview=shown)
    return Response(body=body, status_code=200, headers={
        **SECURITY_HEADERS, "Content-Security-Policy": RENDERED_POLICY, "X-Frame-Options": "SAMEORIGIN",
        "Content-Type": HTML, "Cache-Control": "no-store"})


# --- settings: API keys, users, messaging, currency (crm.console.settings) --------------------------


def _settings_page(session: Session, template: str, title: str, status: int = 200, **context: Any) -> Response:
    return _html(template, status=status, title=title, **{"done": None, "problem": None, **context},
                 **_context(session, "settings"))


@app.route("/console/settings", methods=["GET"])
@_page
@_signed_in
def settings_index(session: Session) -> Response:
    return _settings_page(session, "settings.html", "Settings")


def _stores_page(session: Session, status: int = 200, **context: Any) -> Response:
    from crm.models.stores import Platform

    listed = wiring.store_directory().workspace_stores(session.workspace_id)
    return _settings_page(session, "settings_stores.html", "Stores", status=status, stores=listed,
                          platforms=[p.value for p in Platform],
                          **{"added": None, "secret": None, "rotated": None,
                             "draft": {"platform": "shopify", "domain": ""}, **context})


@app.route("/console/settings/stores", methods=["GET"])
@_page
@_signed_in
def settings_stores(session: Session) -> Response:
    return _stores_page(session)


@app.route("/console/settings/stores", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def add_store(session: Session) -> Response:
    """A store of this workspace, as `crm store add --workspace`: its webhook secret and the workspace's new API key
    are on this answer only, never logged."""
    form = _form()
    _can_change(session, form)
    try:
        added, secret = console_settings.add_store(
            wiring.store_directory(), session.workspace_id, form.get("platform", ""), form.get("domain", ""),
            form.get("webhook_secret", ""), form.get("api_token", ""), utc_now())
    except console_settings.SettingRefused as refused:
        draft = {name: form.get(name, "") for name in ("platform", "domain")}
        return _stores_page(session, status=400, problem=str(refused), draft=draft)
    logger.info("console store added", extra={"workspace_id": session.workspace_id, "store_id": added.store_id,
                                              "key_id": added.api_key_id})
    return _stores_page(session, done=f"Store {added.domain} ({added.platform}) is added.", added=added,
                        secret=secret)


@app.route("/console/settings/stores/rotate", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def rotate_store_secret(session: Session) -> Response:
    from crm.stores import UnknownStore

    form = _form()
    _can_change(session, form)
    try:
        store, secret = console_settings.rotate_secret(wiring.store_directory(), wiring.store_vault(),
                                                       session.workspace_id, form.get("store_id", ""),
                                                       form.get("webhook_secret", ""))
    except (console_settings.SettingRefused, UnknownStore) as refused:
        return _stores_page(session, status=409, problem=str(refused))
    logger.info("console store secret rotated", extra={"workspace_id": session.workspace_id,
                                                       "store_id": store.store_id})
    return _stores_page(session, done=f"{store.domain} has a new webhook secret: the old one still verifies until "
                                      "you retire it.", rotated=store, secret=secret)


@app.route("/console/settings/stores/retire", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def retire_store_secrets(session: Session) -> Response:
    from crm.stores import UnknownStore

    form = _form()
    _can_change(session, form)
    try:
        store, retired = console_settings.retire_secrets(wiring.store_directory(), wiring.store_vault(),
                                                         session.workspace_id, form.get("store_id", ""))
    except (console_settings.SettingRefused, UnknownStore) as refused:
        return _stores_page(session, status=409, problem=str(refused))
    logger.info("console store secrets retired", extra={"workspace_id": session.workspace_id,
                                                        "store_id": store.store_id, "retired": retired})
    said = "no older secret to retire" if retired == 0 else \
        f"{retired} older secret{'s' if retired > 1 else ''} retired: refused within a minute"
    return _stores_page(session, done=f"{store.domain}: {said}.")


def _keys_page(session: Session, status: int = 200, **context: Any) -> Response:
    listed = [api_keys.key_view(key, utc_now()) for key in wiring.store_directory().api_keys(session.workspace_id)]
    return _settings_page(session, "settings_keys.html", "API keys", status=status, keys=listed,
                          **{"issued": None, **context})


@app.route("/console/settings/keys", methods=["GET"])
@_page
@_signed_in
def settings_keys(session: Session) -> Response:
    return _keys_page(session)


@app.route("/console/settings/keys", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def create_key(session: Session) -> Response:
    """A new marketer API key, on this answer only (it is kept as a hash): never logged, never shown again."""
    _can_change(session, _form())
    issued = api_keys.create_api_key(wiring.store_directory(), session.workspace_id, utc_now())
    logger.info("console api key created", extra={"workspace_id": session.workspace_id, "key_id": issued.key.key_id})
    return _keys_page(session, issued=issued)


@app.route("/console/settings/keys/revoke", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def revoke_key(session: Session) -> Response:
    form = _form()
    _can_change(session, form)
    key_id = form.get("key_id", "")
    try:
        api_keys.revoke_api_key(wiring.store_directory(), session.workspace_id, key_id, utc_now())
    except api_keys.UnknownApiKey:
        return _keys_page(session, status=404, problem=f"This workspace has no API key {key_id}.")
    logger.info("console api key revoked", extra={"workspace_id": session.workspace_id, "key_id": key_id})
    return _keys_page(session, done=f"Key {key_id} is revoked: the API refuses it from its next request.")


def _users_page(session: Session, status: int = 200, **context: Any) -> Response:
    listed = wiring.console_users().workspace_users(session.workspace_id)
    return _settings_page(session, "settings_users.html", "Users", status=status, users=listed, roles=ROLES,
                          **{"invitation_link": None, "draft_email": "", **context})


@app.route("/console/settings/users", methods=["GET"])
@_page
@_signed_in
def settings_users(session: Session) -> Response:
    return _users_page(session)


def _console_url() -> str:
    """The console's absolute URL, for an invitation link (as `crm users add --api` prints it)."""
    headers = app.current_request.headers
    host = headers.get("host", "127.0.0.1")
    local = host.split(":")[0] in ("127.0.0.1", "localhost")
    return f"{headers.get('x-forwarded-proto') or ('http' if local else 'https')}://{host}{_root()}"


@app.route("/console/settings/users", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def invite_user(session: Session) -> Response:
    form = _form()
    _can_change(session, form)
    try:
        invitation = console_settings.invite(wiring.console_users(), session.workspace_id, form.get("email", ""),
                                             form.get("role", ""))
    except (console_settings.SettingRefused, UserExists) as refused:
        return _users_page(session, status=400, problem=str(refused), draft_email=form.get("email", ""))
    link = invitation_url(_console_url(), invitation_token(invitation.user.email, invitation.temporary_password))
    logger.info("console user invited", extra={"workspace_id": session.workspace_id, "role": invitation.user.role})
    return _users_page(session, done=f"{invitation.user.email} is invited as {invitation.user.role}.",
                       invitation_link=link)


@app.route("/console/settings/users/role", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def change_user_role(session: Session) -> Response:
    form = _form()
    _can_change(session, form)
    try:
        user = console_settings.change_role(wiring.console_users(), session.workspace_id, form.get("email", ""),
                                            form.get("role", ""))
    except console_settings.SettingRefused as refused:
        return _users_page(session, status=409, problem=str(refused))
    logger.info("console user role", extra={"workspace_id": session.workspace_id, "role": user.role})
    return _users_page(session, done=f"{user.email} is now {'an' if user.role == 'editor' else 'a'} {user.role}.")


@app.route("/console/settings/users/disable", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def disable_user(session: Session) -> Response:
    form = _form()
    _can_change(session, form)
    try:
        user = console_settings.disable(wiring.console_users(), session.workspace_id, form.get("email", ""))
    except console_settings.SettingRefused as refused:
        return _users_page(session, status=409, problem=str(refused))
    logger.info("console user disabled", extra={"workspace_id": session.workspace_id})
    return _users_page(session, done=f"{user.email} is disabled: they are signed out at their next request.")


def _messaging_page(session: Session, status: int = 200, **context: Any) -> Response:
    from crm.messaging import manage as messaging

    held = wiring.messaging_store().messaging_settings(session.workspace_id)
    view = messaging.settings_view(held, messaging.sender_verification(wiring.sender_identities(), held.from_address,
                                                                       request=False))
    return _settings_page(session, "settings_messaging.html", "Messaging", status=status, held=held, view=view,
                          hours=console_settings.hours, **context)


@app.route("/console/settings/messaging", methods=["GET"])
@_page
@_signed_in
def settings_messaging(session: Session) -> Response:
    return _messaging_page(session)


@app.route("/console/settings/messaging", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def save_messaging(session: Session) -> Response:
    """The API's PUT /settings/messaging: saved, and SES asked to verify a new from address."""
    from crm.flows.defaults import DefinitionInvalid
    from crm.messaging import manage as messaging

    form = _form()
    _can_change(session, form)
    store = wiring.messaging_store()
    held = store.messaging_settings(session.workspace_id).model_dump(mode="json")
    try:
        messaging.replace_settings(store, wiring.sender_identities(), session.workspace_id,
                                   console_settings.messaging_document(held, form))
    except (console_settings.SettingRefused, DefinitionInvalid) as refused:
        return _messaging_page(session, status=400, problem=str(refused))
    logger.info("console messaging settings", extra={"workspace_id": session.workspace_id})
    return _messaging_page(session, done="Messaging settings saved.")


def _currency_page(session: Session, status: int = 200, **context: Any) -> Response:
    view = reporting.settings_view(wiring.currency_store().settings(session.workspace_id))
    return _settings_page(session, "settings_currency.html", "Currency", status=status, view=view,
                          rates_text="\n".join(f"{code} {rate}" for code, rate in view["rates"].items()), **context)


@app.route("/console/settings/currency", methods=["GET"])
@_page
@_signed_in
def settings_currency(session: Session) -> Response:
    return _currency_page(session)


@app.route("/console/settings/currency", methods=["POST"], content_types=FORM)
@_page
@_signed_in
def save_currency(session: Session) -> Response:
    """The API's PUT /settings/currency: held, and a job re-derives every customer's totals at them."""
    from crm.config import settings
    from crm.ports import ConcurrentUpdate
    from crm.segments import runs

    form = _form()
    _can_change(session, form)
    try:
        request = reporting.parse_settings(json.dumps(console_settings.currency_document(form)))
    except (console_settings.SettingRefused, reporting.CurrencySettingsInvalid) as refused:
        return _currency_page(session, status=400, problem=str(refused))
    shares = runs.shares_for(wiring.segment_runs().indexed_profiles(), settings().segment_items_per_share)
    try:
        held, job = reporting.replace_settings(wiring.currency_store(), wiring.currency_tasks(), session.workspace_id,
                                               request, utc_now(), shares)
    except ConcurrentUpdate:
        return _currency_page(session, status=409, problem="The currency settings changed meanwhile: check them "
                                                           "and save again.")
    logger.info("console currency settings", extra={"workspace_id": session.workspace_id, "job_id": job.job_id})
    return _currency_page(session, done=f"Totals are now reported in {held.reporting_currency}: every customer's "
                                        "figures are being derived again.")


@app.route("/console/static/{name}", methods=["GET"])
@_page
def static(name: str) -> Response:
    if name not in STATIC_TYPES:
        raise Refused(404, "Not found", "The console has no such file.")
    # The names carry a version (htmx) or change with a deploy: a day in the browser's cache is safe.
    return Response(body=(STATIC / name).read_text(), status_code=200,
                    headers={**SECURITY_HEADERS, "Content-Type": STATIC_TYPES[name],
                             "Cache-Control": "public, max-age=86400"})
