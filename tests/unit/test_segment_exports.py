"""Segment exports over the in-memory fakes: the CSV / JSON Lines writer, options, the direct export's limits,
and the asynchronous job from start to download (claims, retries, redelivery)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.exports import ExportFormat, ExportMessage, ExportOptions, ExportStatus
from crm.models.profile import Profile
from crm.models.segments import Member
from crm.segments import exports, service
from crm.segments.definition import parse_segment

from tests.builders import NOW
from tests.fakes import FakeExportFiles, FakeExportJobStore, FakeExportQueue, FakeProfileRepository, FakeSegmentStore

WS = "ws_a"
OTHER = "ws_b"
BUYERS = parse_segment({"name": "Buyers", "definition": {"field": "orders_count", "op": "gte", "value": 1}})
TRICKY = 'Ann "Nan", Jr'
MULTILINE = "Line one\nline two"


def consent(channel: Channel, state: ConsentState) -> Consent:
    return Consent(channel=channel, state=state, source="test", at=NOW)


class World:
    """A workspace with one custom segment whose members are set directly (recomputing is not the subject)."""

    def __init__(self) -> None:
        self.store = FakeSegmentStore()
        self.repo = FakeProfileRepository()
        self.jobs = FakeExportJobStore()
        self.queue = FakeExportQueue()
        self.files = FakeExportFiles()
        self.segment_id = service.create(self.store, WS, BUYERS, NOW).segment_id

    def member(self, profile_id: str, workspace_id: str = WS, **fields: Any) -> Profile:
        defaults: dict[str, Any] = {"orders_count": 1, "total_spent": Decimal("10.00")}
        profile = Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=NOW - timedelta(days=9),
                          updated_at=NOW, **{**defaults, **fields})
        self.repo.profiles[(workspace_id, profile_id)] = profile
        self.enter(profile_id, workspace_id)
        return profile

    def enter(self, profile_id: str, workspace_id: str = WS) -> None:
        """A member, put straight into the fake's membership: how it got there is the runs' business."""
        self.store.memberships.setdefault((workspace_id, self.segment_id), {})[profile_id] = Member(
            profile_id=profile_id, entered_at=NOW)

    def text(self, **options: Any) -> str:
        chosen = ExportOptions(**options)
        rows = exports.export_rows(self.store, self.repo, WS, self.segment_id, chosen)
        return b"".join(exports.export_chunks(exports.export_lines(rows, chosen))).decode("utf-8")


@pytest.fixture
def world() -> World:
    return World()


def csv_rows(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")  # the BOM that makes Excel read UTF-8
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


# --- the writer ----------------------------------------------------------------------------------


def test_csv_has_a_bom_a_header_and_rfc4180_quoting_in_utf8(world: World) -> None:
    world.member("p1", email="ann@example.com", first_name=TRICKY)
    world.member("p2", email="zoe@example.com", first_name="Zoë", last_name="Ørsted-Ünal 山田")
    world.member("p3", email="multi@example.com", first_name=MULTILINE)
    world.member("p4", email="empty@example.com")

    text = world.text(fields=("email", "first_name", "last_name", "total_spent"))
    assert csv_rows(text) == [["email", "first_name", "last_name", "total_spent"],
                              ["ann@example.com", TRICKY, "", "10.00"],
                              ["zoe@example.com", "Zoë", "Ørsted-Ünal 山田", "10.00"],
                              ["multi@example.com", MULTILINE, "", "10.00"],
                              ["empty@example.com", "", "", "10.00"]]
    assert '"Ann ""Nan"", Jr"' in text and '"Line one\nline two"' in text
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbfemail,first_name")
    assert text.count("\r\n") == 5 and text.endswith("\r\n")


def test_an_empty_segment_is_a_header_alone_or_nothing(world: World) -> None:
    assert world.text(fields=("email", "phone")) == "\ufeffemail,phone\r\n"
    assert world.text(format=ExportFormat.JSONL) == ""


@pytest.mark.parametrize(("typed", "written"), [
    ("=HYPERLINK(\"http://evil.example\",\"x\")", "'=HYPERLINK(\"http://evil.example\",\"x\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(1+1)", "'@SUM(1+1)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("-", "'-"),
    ("Ann-Marie", "Ann-Marie"),
    ("a=b", "a=b"),
    ("", ""),
    ("+442071838750", "+442071838750"),  # a phone in E.164: a number, kept usable
    ("-5.00", "-5.00"),
])
def test_spreadsheet_safe_defuses_formulas_not_numbers(typed: str, written: str) -> None:
    assert exports.spreadsheet_safe(typed) == written


def test_csv_defuses_text_fields_only(world: World) -> None:
    world.member("p1", email="=1+1@example.com", first_name="=cmd|'/C calc'!A0", last_name="@lastname",
                 phone="+442071838750", tags=("=HYPERLINK(1)", "vip"), total_spent=Decimal("-5.00"))
    fields = ("email", "first_name", "last_name", "phone", "tags", "total_spent", "orders_count")
    [_, row] = csv_rows(world.text(fields=fields))
    assert row == ["'=1+1@example.com", "'=cmd|'/C calc'!A0", "'@lastname", "+442071838750", "'=HYPERLINK(1);vip",
                   "-5.00", "1"]


def test_jsonl_is_utf8_without_bom_and_not_defused(world: World) -> None:
    world.member("p1", email="ann@example.com", first_name="=Zoë, \"the\"\nfirst")
    text = world.text(format=ExportFormat.JSONL, fields=("email", "first_name", "orders_count", "tags"))
    assert not text.startswith("\ufeff") and "Zoë" in text  # not \u-escaped
    assert [json.loads(line) for line in text.splitlines()] == [
        {"email": "ann@example.com", "first_name": "=Zoë, \"the\"\nfirst", "orders_count": 1, "tags": ""}]


def test_the_consent_filter_keeps_the_subscribed_on_that_channel(world: World) -> None:
    world.member("p1", email="both@example.com", consents={
        "email": consent(Channel.EMAIL, ConsentState.SUBSCRIBED), "sms": consent(Channel.SMS, ConsentState.SUBSCRIBED)})
    world.member("p2", email="email@example.com", consents={"email": consent(Channel.EMAIL, ConsentState.SUBSCRIBED)})
    world.member("p3", email="unsub@example.com",
                 consents={"email": consent(Channel.EMAIL, ConsentState.UNSUBSCRIBED)})
    world.member("p4", email="silent@example.com")

    def emails(**options: Any) -> list[str]:
        return [json.loads(line)["email"] for line in world.text(format=ExportFormat.JSONL, **options).splitlines()]

    assert emails() == ["both@example.com", "email@example.com", "unsub@example.com", "silent@example.com"]
    assert emails(consent=Channel.EMAIL) == ["both@example.com", "email@example.com"]
    assert emails(consent=Channel.SMS) == ["both@example.com"]


def test_merged_or_erased_members_are_left_out(world: World) -> None:
    world.member("p1", email="kept@example.com")
    world.member("p2", email="merged@example.com", merged_into="p1")
    world.enter("p3")  # erased since
    assert csv_rows(world.text()) == [["email"], ["kept@example.com"]]


def test_rows_are_read_a_page_at_a_time(world: World) -> None:
    for i in range(250):
        world.member(f"p{i:03}", email=f"s{i}@example.com")
    pages: list[int] = []
    members = world.store.members

    def counting(workspace_id: str, segment_id: str, after: str | None, limit: int) -> list[Member]:
        page = members(workspace_id, segment_id, after, limit)
        pages.append(len(page))
        return page

    world.store.members = counting  # type: ignore[method-assign]
    rows = exports.export_rows(world.store, world.repo, WS, world.segment_id, ExportOptions())
    assert next(rows) == {"email": "s0@example.com"} and pages == [100]
    assert len(list(rows)) == 249 and pages == [100, 100, 50]


# --- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "problem"), [
    ({"format": "xml"}, "format: "), ({"fields": "email,password"}, "fields.1: unknown field 'password'"),
    ({"consent": "post"}, "consent: "),
    ({"fields": ","}, "fields: "), ({"feilds": "email"}, "feilds: unknown option; the options are format, fields"),
])
def test_query_options_name_the_bad_parameter(query: dict[str, str], problem: str) -> None:
    with pytest.raises(exports.ExportInvalid) as caught:
        exports.options_from_query(query)
    assert str(caught.value).startswith(problem)


def test_a_field_named_twice_is_one_column_where_first_named() -> None:
    assert exports.options_from_query({"fields": "email,phone,email"}).fields == ("email", "phone")


def test_query_options_default_to_email_as_csv() -> None:
    assert exports.options_from_query({}) == ExportOptions(format=ExportFormat.CSV, fields=("email",), consent=None)
    chosen = exports.options_from_query({"format": "jsonl", "fields": " email , first_name ", "consent": "sms"})
    assert chosen == ExportOptions(format=ExportFormat.JSONL, fields=("email", "first_name"), consent=Channel.SMS)


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"format": "xlsx"}', "format: "), (b'{"fields": ["email", 3]}', "fields.1: "),
    (b'{"fields": ["ssn"]}', "fields.0: unknown field 'ssn'"), (b'{"fields": []}', "fields: "),
    (b'{"consent": "fax"}', "consent: "), (b'{"limit": 5}', "limit: unknown option"),
    (b"[1]", "body must be a JSON object"), (b"{", "body is not JSON"),
])
def test_body_options_name_the_bad_field(body: bytes, problem: str) -> None:
    with pytest.raises(exports.ExportInvalid) as caught:
        exports.options_from_body(body)
    assert str(caught.value).startswith(problem)


def test_body_options_take_a_list_or_the_query_form_and_an_empty_body_is_every_default() -> None:
    assert exports.options_from_body(b"") == exports.options_from_body(b"{}") == ExportOptions()
    listed = exports.options_from_body(b'{"format": "jsonl", "fields": ["email", "phone"], "consent": "email"}')
    assert listed == exports.options_from_body(b'{"format": "jsonl", "fields": "email,phone", "consent": "email"}')
    assert listed.fields == ("email", "phone")


# --- the direct export ---------------------------------------------------------------------------


def test_a_direct_export_is_the_whole_body(world: World) -> None:
    world.member("p1", email="ann@example.com")
    body = exports.direct_export(world.store, world.repo, WS, world.segment_id, ExportOptions())
    assert body == "\ufeffemail\r\nann@example.com\r\n"


def test_a_direct_export_of_a_large_segment_is_refused_before_reading(world: World) -> None:
    record = world.store.records[(WS, world.segment_id)]
    world.store.records[(WS, world.segment_id)] = record.model_copy(update={"size": exports.MAX_DIRECT_MEMBERS + 1})
    world.repo.profiles_by_id = None  # type: ignore[assignment,method-assign]  # never reached
    with pytest.raises(exports.ExportTooLarge, match=f"POST /segments/{world.segment_id}/exports"):
        exports.direct_export(world.store, world.repo, WS, world.segment_id, ExportOptions())


def test_a_direct_export_too_wide_for_one_response_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(10):
        world.member(f"p{i}", email=f"s{i}@example.com", first_name="Zoë \"Z\"")
    options = ExportOptions(fields=("email", "first_name"))
    body = exports.direct_export(world.store, world.repo, WS, world.segment_id, options)
    # Counted as the response's JSON carries it: ë is 6 bytes there (\u00eb), a quote 2 (\").
    monkeypatch.setattr(exports, "MAX_DIRECT_BYTES", len(json.dumps(body)) - 3)
    with pytest.raises(exports.ExportTooLarge, match="MiB"):
        exports.direct_export(world.store, world.repo, WS, world.segment_id, options)


def test_exports_of_unknown_or_other_workspaces_segments_are_not_found(world: World) -> None:
    with pytest.raises(service.SegmentNotFound):
        list(exports.export_rows(world.store, world.repo, WS, "seg_0000000000000000", ExportOptions()))
    with pytest.raises(service.SegmentNotFound):
        exports.direct_export(world.store, world.repo, OTHER, world.segment_id, ExportOptions())
    with pytest.raises(service.SegmentNotFound):
        exports.start_export(world.jobs, world.queue, world.store, OTHER, world.segment_id, ExportOptions(), NOW)
    assert world.jobs.jobs == {} and world.queue.messages == []
    # A built-in exists in every workspace, computed or not.
    assert list(exports.export_rows(world.store, world.repo, WS, "builtin:vip", ExportOptions())) == []


# --- the asynchronous export ---------------------------------------------------------------------


def clock_from(start: datetime) -> Callable[[], datetime]:
    ticks = iter(start + timedelta(seconds=s) for s in range(1000))
    return lambda: next(ticks)


def start(world: World, **options: Any) -> ExportMessage:
    job = exports.start_export(world.jobs, world.queue, world.store, WS, world.segment_id, ExportOptions(**options),
                               NOW)
    assert (job.status, job.attempts) == (ExportStatus.QUEUED, 0)
    [message] = world.queue.messages[-1:]
    assert message == ExportMessage(workspace_id=WS, export_id=job.export_id)
    return message


def run(world: World, message: ExportMessage, last_attempt: bool = False) -> Any:
    return exports.run_export(message, world.jobs, world.store, world.repo, world.files, clock_from(NOW),
                              last_attempt)


def test_a_job_runs_to_done_and_its_view_has_a_download_url(world: World) -> None:
    world.member("p1", email="ann@example.com", first_name=TRICKY)
    world.member("p2", email="zoe@example.com", first_name="Zoë")
    message = start(world, fields=("email", "first_name"))
    queued = exports.export_view(world.jobs.jobs[(WS, message.export_id)], world.files, NOW)
    assert (queued["status"], queued["url"], queued["rows"]) == ("queued", None, None)

    done = run(world, message)
    assert done is not None and (done.status, done.rows, done.attempts) == (ExportStatus.DONE, 2, 1)
    key = f"exports/{WS}/{message.export_id}/1.csv"
    stored = world.files.objects[key]
    assert csv_rows(stored.body.decode()) == [["email", "first_name"], ["ann@example.com", TRICKY],
                                              ["zoe@example.com", "Zoë"]]
    assert done.size_bytes == len(stored.body)
    assert stored.content_type == "text/csv; charset=utf-8"
    assert stored.filename == f"{world.segment_id}-{message.export_id}.csv"

    view = exports.export_view(done, world.files, NOW + timedelta(minutes=5))
    assert view["status"] == "done" and (view["rows"], view["bytes"]) == (2, len(stored.body))
    assert view["url"] == f"https://exports.example/{key}?expires-in=3600"
    assert view["url_expires_at"] == (NOW + timedelta(minutes=65)).isoformat()
    assert view["file_expires_at"] == (done.finished_at + timedelta(days=7)).isoformat()
    expired = exports.export_view(done, world.files, done.finished_at + timedelta(days=7, seconds=1))
    assert (expired["status"], expired["url"]) == ("done", None)


def test_a_redelivered_message_does_not_redo_a_done_job(world: World) -> None:
    world.member("p1", email="ann@example.com")
    message = start(world)
    done = run(world, message)
    assert run(world, message) is None
    assert world.files.writes == 1 and list(world.files.objects) == [f"exports/{WS}/{message.export_id}/1.csv"]
    assert world.jobs.jobs[(WS, message.export_id)] == done


def test_a_failed_attempt_is_retried_by_the_queue_and_recorded_on_the_last(world: World) -> None:
    world.member("p1", email="ann@example.com")
    message = start(world)
    world.files.fail_after_chunks = 1
    with pytest.raises(ConnectionError):
        run(world, message)
    held = world.jobs.jobs[(WS, message.export_id)]
    assert (held.status, held.attempts, world.files.objects) == (ExportStatus.RUNNING, 1, {})

    done = run(world, message)  # the queue's second delivery
    assert done is not None and (done.status, done.attempts) == (ExportStatus.DONE, 2)

    other = start(world)
    world.files.fail_after_chunks = 0
    with pytest.raises(ConnectionError):
        run(world, other, last_attempt=True)
    failed = world.jobs.jobs[(WS, other.export_id)]
    assert failed.status is ExportStatus.FAILED
    assert failed.error == "the export failed on every attempt (1); start a new one"
    assert run(world, other) is None  # a failed job is not taken up again


def test_a_segment_deleted_before_the_worker_runs_fails_the_job_at_once(world: World) -> None:
    message = start(world)
    service.delete(world.store, WS, world.segment_id)
    failed = run(world, message)
    assert failed is not None and failed.status is ExportStatus.FAILED and "deleted" in (failed.error or "")
    assert world.files.objects == {}


def test_an_overtaken_attempt_leaves_the_result_to_the_later_one(world: World) -> None:
    world.member("p1", email="ann@example.com")
    message = start(world)
    write = world.files.write

    def overtaken(key: str, *args: Any) -> int:
        size = write(key, *args)
        world.jobs.claim(WS, message.export_id, NOW)  # a duplicate delivery claims the job meanwhile
        return size

    world.files.write = overtaken  # type: ignore[method-assign]
    assert run(world, message) is None
    assert world.files.objects == {}  # the first attempt's file is removed; attempt 2 writes its own
    held = world.jobs.jobs[(WS, message.export_id)]
    assert (held.status, held.attempts) == (ExportStatus.RUNNING, 2)


def test_a_job_that_could_not_be_queued_is_failed(world: World) -> None:
    def refuse(message: ExportMessage) -> None:
        raise ConnectionError("SQS is down")

    world.queue.enqueue = refuse  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        exports.start_export(world.jobs, world.queue, world.store, WS, world.segment_id, ExportOptions(), NOW)
    [job] = world.jobs.jobs.values()
    assert (job.status, job.error) == (ExportStatus.FAILED, "the export could not be queued")


def test_a_job_quiet_for_too_long_is_reported_failed(world: World) -> None:
    message = start(world)
    job = world.jobs.claim(WS, message.export_id, NOW)
    assert job is not None
    assert exports.export_view(job, world.files, NOW + exports.GIVE_UP_AFTER)["status"] == "running"
    late = exports.export_view(job, world.files, NOW + exports.GIVE_UP_AFTER + timedelta(seconds=1))
    assert late["status"] == "failed" and "did not finish" in late["error"]


def test_a_job_is_found_only_under_its_segment_and_workspace(world: World) -> None:
    message = start(world)
    assert exports.export_job(world.jobs, WS, world.segment_id, message.export_id).export_id == message.export_id
    for workspace_id, segment_id in ((OTHER, world.segment_id), (WS, "builtin:vip")):
        with pytest.raises(exports.ExportNotFound):
            exports.export_job(world.jobs, workspace_id, segment_id, message.export_id)
