"""Which raw deliveries name a shopper: contact points anywhere, ids only where platforms put ids."""

from __future__ import annotations

import json

from crm.archive import ArchivedDelivery, frame, unframe
from crm.models.ingest import DeliveryMeta
from crm.models.privacy import PrivacyJob, PrivacyStage
from crm.models.stores import Platform
from crm.privacy import Terms, mentions, scrub_archive
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.fakes import FakeArchiveStore, FakePrivacyJobs

TERMS = Terms(emails=frozenset({"ann@example.com"}), phones=frozenset({"+12025550143"}),
              ids=frozenset({"5", "7300000000001"}))


def test_an_email_in_any_case_or_escaping_is_a_mention() -> None:
    assert mentions(b'{"note": "write to ANN@Example.com"}', TERMS)
    assert mentions(b"ann@example.com,Ann,Lee", TERMS)  # an import row


def test_a_phone_in_any_national_format_is_a_mention() -> None:
    assert mentions(b'{"billing": {"phone": "(202) 555-0143"}}', TERMS)
    assert mentions(b'{"phone": "+1 202-555-0143"}', TERMS)
    assert not mentions(b'{"phone": "(202) 555-0199"}', TERMS)


def test_ids_count_only_where_platforms_put_ids() -> None:
    assert mentions(json.dumps({"id": 5, "line_items": []}).encode(), TERMS)
    assert mentions(json.dumps({"id": 9, "customer": {"id": 7300000000001}}).encode(), TERMS)
    assert mentions(json.dumps({"order_id": "5"}).encode(), TERMS)
    # Another order whose line item, quantity or price happens to be 5 is someone else's.
    assert not mentions(json.dumps({"id": 9, "line_items": [{"id": 5, "quantity": 5}], "total": "5"}).encode(),
                        TERMS)


def test_nothing_to_look_for_mentions_nothing() -> None:
    assert not Terms()
    assert not mentions(b'{"id": 5}', Terms())


# ---- the archive walk: scoped to the requesting workspace, resumable from its cursor ----

ANN = Terms(emails=frozenset({"ann@example.com"}))


def _framed(workspace_id: str, store_id: str, who: str, n: int) -> bytes:
    body = json.dumps({"id": n, "email": f"{who}@example.com"}).encode()
    header = ArchivedDelivery(platform=Platform.SHOPIFY, workspace_id=workspace_id, store_id=store_id,
                              meta=DeliveryMeta(topic="orders/create", delivery_id=f"d{n}"), received_at=NOW,
                              body_length=len(body))
    return frame(header.envelope(body), body)


def _archive() -> dict[str, bytes]:
    """Firehose objects mixing two tenants who both know Ann, and each tenant's own stand-alone objects. ws_a's
    store st_a2 is named by no record of Ann, only by its deliveries in the shared objects."""
    objects = {f"deliveries/2026/03/01/12/batch-{n:02d}": b"".join([
        _framed("ws_a", "st_a1", "ann", 10 * n), _framed("ws_b", "st_b", "ann", 10 * n + 1),
        _framed("ws_a", "st_a2" if n % 2 else "st_a1", "bob", 10 * n + 2)]) for n in range(6)}
    objects["deliveries/2026/03/01/13/only-ann"] = _framed("ws_a", "st_a1", "ann", 99)
    for store_id in ("st_a1", "st_a2", "st_b"):
        objects[f"raw/shopify/{store_id}/2026/03/01/big-ann"] = b'{"email": "ann@example.com", "pad": "..."}'
        objects[f"raw/shopify/{store_id}/2026/03/01/big-bob"] = b'{"email": "bob@example.com", "pad": "..."}'
        objects[f"imports/{store_id}/orders.csv"] = b"Email,Name\nann@example.com,Ann\nbob@example.com,Bob\n"
    return objects


def _job(request: str = "customer_redact", store_id: str = "st_a1") -> PrivacyJob:
    return PrivacyJob(workspace_id="ws_a", store_id=store_id, request_id="r1", request=request,
                      stage=PrivacyStage.ARCHIVE, created_at=NOW, updated_at=NOW, terms=ANN, store_ids=(store_id,))


def _ws_b(objects: dict[str, bytes]) -> dict[str, object]:
    frames = [f for key, data in sorted(objects.items()) if key.startswith("deliveries/") for f in unframe(data)]
    return {"frames": [f for f in frames if f[0].workspace_id == "ws_b"],
            "objects": {k: v for k, v in objects.items() if "/st_b/" in k}}


def test_a_redaction_scrubs_its_own_workspace_and_leaves_another_tenants_frames_and_objects_alone() -> None:
    archive = FakeArchiveStore(_archive())
    before = _ws_b(archive.objects)

    job = scrub_archive(_job(), archive, FakePrivacyJobs(), out_of_time=lambda: False)

    assert job.stage == PrivacyStage.DONE
    assert _ws_b(archive.objects) == before
    ws_a = [body for key, data in archive.objects.items() if key.startswith("deliveries/")
            for header, body in unframe(data) if header.workspace_id == "ws_a"]
    assert len(ws_a) == 6 and not [b for b in ws_a if b"ann@" in b]
    assert "deliveries/2026/03/01/13/only-ann" not in archive.objects
    # Both of ws_a's stores, st_a2 learnt from its frames, lose Ann's stand-alone deliveries and import rows.
    for store_id in ("st_a1", "st_a2"):
        assert f"raw/shopify/{store_id}/2026/03/01/big-ann" not in archive.objects
        assert f"raw/shopify/{store_id}/2026/03/01/big-bob" in archive.objects
        assert archive.objects[f"imports/{store_id}/orders.csv"] == b"Email,Name\nbob@example.com,Bob\n"
    assert (job.archive.deliveries_removed, job.archive.objects_deleted, job.archive.rows_removed) == (7, 3, 2)
    assert job.store_ids == ("st_a1", "st_a2")


def test_a_shop_redaction_takes_only_its_stores_frames_and_prefixes() -> None:
    archive = FakeArchiveStore(_archive())
    before = _ws_b(archive.objects)

    scrub_archive(_job("shop_redact", "st_a2"), archive, FakePrivacyJobs(), out_of_time=lambda: False)

    assert _ws_b(archive.objects) == before
    frames = [h for key, data in archive.objects.items() if key.startswith("deliveries/") for h, _ in unframe(data)]
    assert [h for h in frames if h.store_id == "st_a2"] == []
    assert len([h for h in frames if h.store_id == "st_a1"]) == 10
    assert not [key for key in archive.objects if "/st_a2/" in key]
    assert "raw/shopify/st_a1/2026/03/01/big-ann" in archive.objects


@settings(max_examples=40, deadline=None)
@given(stops=st.lists(st.booleans(), min_size=1, max_size=40), crash=st.booleans())
def test_a_walk_stopped_anywhere_and_resumed_ends_as_one_uninterrupted_walk(stops: list[bool], crash: bool) -> None:
    """Paused for time (the cursor stored) or cut short without warning (the last checkpoint redelivered), runs
    resumed until done leave the archive exactly as one run does; a paused walk also counts the same."""
    whole = FakeArchiveStore(_archive())
    once = scrub_archive(_job(), whole, FakePrivacyJobs(), out_of_time=lambda: False)

    archive, jobs = FakeArchiveStore(_archive()), FakePrivacyJobs()
    answers = iter(stops)
    job, runs = _job(), 0
    while job.stage != PrivacyStage.DONE:
        runs += 1
        assert runs <= len(whole.objects) + len(archive.objects) + 2, "a run made no progress"
        job = scrub_archive(job, archive, jobs, out_of_time=lambda: next(answers, False))
        if crash and job.stage != PrivacyStage.DONE:
            job = jobs.job("ws_a", "r1") or _job()  # the cursor of the last checkpoint, or none
    assert archive.objects == whole.objects
    if not crash:
        assert job.archive.model_dump(exclude={"cursor"}) == once.archive.model_dump(exclude={"cursor"})
        assert job.store_ids == once.store_ids


def test_two_jobs_rewriting_one_firehose_object_at_once_keep_both_erasures() -> None:
    archive = FakeArchiveStore({"deliveries/x": b"".join([_framed("ws_a", "st_a1", "ann", 1),
                                                          _framed("ws_b", "st_b", "cy", 2),
                                                          _framed("ws_b", "st_b", "dee", 3)])})
    other = PrivacyJob(workspace_id="ws_b", store_id="st_b", request_id="r2", request="customer_redact",
                       stage=PrivacyStage.ARCHIVE, created_at=NOW, updated_at=NOW,
                       terms=Terms(emails=frozenset({"cy@example.com"})), store_ids=("st_b",))
    read = archive.read

    def read_then_other_job_writes(key: str) -> tuple[bytes, str]:
        answer = read(key)
        archive.read = read  # type: ignore[method-assign]
        scrub_archive(other, archive, FakePrivacyJobs(), out_of_time=lambda: False)  # between read and write
        return answer

    archive.read = read_then_other_job_writes  # type: ignore[method-assign]
    scrub_archive(_job(), archive, FakePrivacyJobs(), out_of_time=lambda: False)

    assert [json.loads(body)["email"] for _, body in unframe(archive.objects["deliveries/x"])] == ["dee@example.com"]



def test_an_erasure_looks_for_the_address_as_identities_spell_it() -> None:
    """A request naming ``Ev\\u200bZW@Example.com`` erases the shopper known as ``evzw@example.com``."""
    from datetime import UTC, datetime

    from crm.models.canonical import ComplianceKind, ComplianceRequest
    from crm.models.stores import Platform
    from crm.ports import Holdings
    from crm.privacy import terms_for

    request = ComplianceRequest(workspace_id="ws_a", store_id="st_a", platform=Platform.SHOPIFY,
                                request=ComplianceKind.CUSTOMER_REDACT,
                                request_id="r1", email=" Ev\u200bZW@Example.com ",
                                requested_at=datetime(2026, 1, 1, tzinfo=UTC))
    terms = terms_for(request, Holdings(profiles=(), timeline=(), orders=(), customers=()))
    assert terms.emails == frozenset({"evzw@example.com"})
