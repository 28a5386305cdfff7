"""One contract for flow runs (claims, last sends) and wait schedules: the in-memory fakes and the DynamoDB /
EventBridge Scheduler adapters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from crm.adapters.flow_runs import DynamoRunStore
from crm.adapters.scheduler import EventBridgeWaitScheduler, at_expression
from crm.flows.ports import RunStore, StepAlreadyClaimed, WaitScheduler
from crm.models.flows import FlowRun, RunStatus, StepOutcome, StepRecord, WakeUp, run_id_for, schedule_name
from crm.ports import ConcurrentUpdate
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import NOW
from tests.fakes import FakeRunStore, FakeWaitScheduler

WS = "ws_a"


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def runs(request: pytest.FixtureRequest) -> RunStore:
    if request.param == "fake":
        return FakeRunStore()
    provisioned: Provisioned = request.getfixturevalue("provisioned")
    return DynamoRunStore(provisioned.outputs["TableName"])


def _run(profile_id: str = "p1", trigger: str = "checkout-1", flow_id: str = "builtin:abandoned_checkout") -> FlowRun:
    # A trigger's detail as the bus carries it, floats included (DynamoDB's types refuse floats).
    return FlowRun(workspace_id=WS, flow_id=flow_id, flow_version=1, run_id=run_id_for(flow_id, trigger),
                   profile_id=profile_id, trigger_type="CheckoutStarted", trigger_event_id=trigger,
                   trigger={"checkout_id": "c1", "weight": 0.5, "items": [{"title": "Mug"}]}, entered_at=NOW,
                   next_step="wait_4h", wake_at=NOW + timedelta(hours=4))


def test_a_run_is_created_once_and_saved_only_over_the_revision_read(runs: RunStore) -> None:
    run = _run()
    assert runs.create_run(run) is True
    assert runs.create_run(run.model_copy(update={"entered_at": NOW + timedelta(seconds=1)})) is False
    assert runs.get_run(WS, "p1", run.run_id) == run
    moved = run.model_copy(update={"next_step": "email_1", "wake_at": None, "revision": 1})
    runs.save_run(moved, 0)
    with pytest.raises(ConcurrentUpdate):
        runs.save_run(moved.model_copy(update={"revision": 2}), 0)  # a delivery that read revision 0
    assert runs.get_run(WS, "p1", run.run_id) == moved


def test_a_profiles_runs_are_listed_by_flow_and_deleted_with_their_claims(runs: RunStore) -> None:
    first, second, other = _run(), _run(trigger="checkout-2", flow_id="builtin:welcome"), _run(profile_id="p2")
    for run in (first, second, other):
        runs.create_run(run)
    runs.claim_step(first, "email_1", NOW)
    assert {r.run_id for r in runs.runs_of_profile(WS, "p1")} == {first.run_id, second.run_id}
    assert [r.run_id for r in runs.runs_of_profile(WS, "p1", "builtin:welcome")] == [second.run_id]
    assert {r.run_id for r in runs.delete_runs(WS, "p1")} == {first.run_id, second.run_id}
    assert runs.runs_of_profile(WS, "p1") == [] and runs.step_claim(first, "email_1") is None
    assert runs.runs_of_profile(WS, "p2") == [other]


def test_a_step_is_claimed_once_and_unknown_until_recorded(runs: RunStore) -> None:
    run = _run()
    runs.create_run(run)
    assert runs.step_claim(run, "email_1") is None
    runs.claim_step(run, "email_1", NOW)
    with pytest.raises(StepAlreadyClaimed):
        runs.claim_step(run, "email_1", NOW + timedelta(minutes=5))
    assert runs.step_claim(run, "email_1") == StepRecord(step_id="email_1", outcome=StepOutcome.UNKNOWN, at=NOW)
    sent = StepRecord(step_id="email_1", outcome=StepOutcome.SENT, at=NOW, channel="email", message_id="m-1")
    runs.record_step(run, sent)
    assert runs.step_claim(run, "email_1") == sent
    assert runs.get_run(WS, "p1", run.run_id) == run  # a claim is not a run
    assert [r.status for r in runs.runs_of_profile(WS, "p1")] == [RunStatus.ACTIVE]


@pytest.fixture(params=["fake", pytest.param("scheduler", marks=pytest.mark.integration)])
def scheduler(request: pytest.FixtureRequest) -> tuple[WaitScheduler, Any]:
    if request.param == "fake":
        fake = FakeWaitScheduler()
        return fake, lambda name: fake.schedules.get(name)
    provisioned: Provisioned = request.getfixturevalue("provisioned")
    group = provisioned.outputs["FlowScheduleGroup"]
    adapter = EventBridgeWaitScheduler(group, "arn:aws:sqs:us-east-1:123456789012:flows", "arn:aws:iam::1:role/s")

    def held(name: str) -> WakeUp | None:
        try:
            found = client("scheduler").get_schedule(Name=name, GroupName=group)
        except client("scheduler").exceptions.ResourceNotFoundException:
            return None
        return WakeUp.model_validate_json(found["Target"]["Input"])

    return adapter, held


def test_a_wake_up_is_scheduled_once_by_run_and_step_and_cancelled_by_name(
        scheduler: tuple[WaitScheduler, Any]) -> None:
    waits, held = scheduler
    wake = WakeUp(workspace_id=WS, profile_id="p1", flow_id="f", run_id="r" * 32, step_id="wait_4h",
                  due_at=NOW + timedelta(hours=4))
    waits.schedule(wake)
    waits.schedule(wake)  # a retried step
    assert held(schedule_name(wake.run_id, "wait_4h")) == wake
    waits.cancel(wake.run_id, "wait_4h")
    waits.cancel(wake.run_id, "wait_4h")  # gone already: not an error
    assert held(schedule_name(wake.run_id, "wait_4h")) is None


def test_at_expressions_are_utc_to_the_second_and_never_early() -> None:
    wake = WakeUp(workspace_id=WS, profile_id="p1", flow_id="f", run_id="r", step_id="s",
                  due_at=NOW + timedelta(hours=4, microseconds=1))
    assert at_expression(wake) == "at(2026-03-01T16:00:01)"
    assert at_expression(wake.model_copy(update={"due_at": NOW})) == "at(2026-03-01T12:00:00)"
    assert len(schedule_name("f" * 32, "a" * 24)) <= 64
