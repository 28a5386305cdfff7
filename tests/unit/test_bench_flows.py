"""bench/flows.py's arithmetic: the step kinds derived from the measured shapes, the monthly cost from them at the
list prices (delivery fees apart), and a meter that counts only the flows function's requests. The figures
themselves are measured by `make bench`, never asserted here."""

from __future__ import annotations

import importlib.util
import sys
import threading
from decimal import Decimal
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    # The bench scripts import each other as top-level modules (`from ingest_path import ...`).
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_flows", BENCH / "flows.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _counts(requests: float = 0, **units: float) -> dict[tuple[str, ...], float]:
    counts: dict[tuple[str, ...], float] = {("unit", unit): amount for unit, amount in units.items()}
    if requests:
        counts["req", "dynamodb", "GetItem"] = requests
    return counts


def test_each_step_kind_is_a_difference_of_shapes(bench: ModuleType) -> None:
    shapes = {
        "no_flow": _counts(1, rru=1.0),
        "heard": _counts(2, rru=1.5),
        "exit": _counts(5, rru=3.0, wru=4.0),
        "email": _counts(8, rru=4.0, wru=7.0, ses=1),
        "tag": _counts(6, rru=3.0, wru=6.0),
        "sms": _counts(9, rru=4.0, wru=7.0, sms=1),
        "delay_email": _counts(11, rru=5.0, wru=9.0, ses=1, scheduler=1),
        "delay_exit": _counts(13, rru=7.5, wru=10.0, scheduler=1),
    }
    kinds = bench.step_kinds(shapes)
    assert kinds["trigger_check"] == shapes["heard"]  # an event of a live workspace, heard, starting nothing
    assert kinds["run_start"] == _counts(3, rru=1.5, wru=4.0)
    assert kinds["email"] == _counts(3, rru=1.0, wru=3.0, ses=1)
    assert kinds["sms"] == _counts(4, rru=1.0, wru=3.0, sms=1)
    assert kinds["tag"] == _counts(1, wru=2.0)
    assert kinds["delay"] == _counts(3, rru=1.0, wru=2.0, scheduler=1)
    # [delay, email] ended by an order: less [exit], the delay and the order's own check.
    assert kinds["exit_on_event"] == _counts(3, rru=2.0, wru=4.0)  # 13 - 5 - 3 - 2; 7.5 - 3 - 1 - 1.5


def test_a_difference_never_goes_below_zero(bench: ModuleType) -> None:
    assert bench.minus(_counts(1, rru=1.0), _counts(2, rru=0.5, wru=1.0)) == {("unit", "rru"): 0.5}


def test_the_monthly_cost_prices_each_unit_and_lists_delivery_apart(bench: ModuleType) -> None:
    per_step = {"email": _counts(3, wru=2.0, rru=4.0, ses=1, sqs=3),
                "sms": _counts(1, sms=1, sqs=3), "delay": _counts(scheduler=1, sqs=1)}
    per_step["email"]["unit", "lambda"] = 1
    lines = {line.component.split(" (")[0]: line.dollars
             for line in bench.monthly_cost(per_step, {"email": 1_000_000, "sms": 1_000, "delay": 500_000})}
    assert lines["DynamoDB write request units"] == Decimal("1.25")  # 2M WRU at $0.625/M
    assert lines["DynamoDB read request units"] == Decimal("0.50")  # 4M RRU at $0.125/M
    assert lines["Lambda invocations"] == Decimal("0.20")
    assert lines["SQS requests"] == Decimal("1.40")  # 3M + 3k + 0.5M at $0.40/M
    assert lines["EventBridge Scheduler invocations"] == Decimal("0.50")
    assert lines["total, infrastructure"] == Decimal("3.85")
    assert lines["SES delivery, apart"] == Decimal("100.00")  # $0.10 per 1,000
    assert lines["SNS SMS delivery, apart"] == Decimal("5.81")


def test_the_reference_month_is_designs_store(bench: ModuleType) -> None:
    month = bench.REFERENCE_MONTH
    assert month["email"] + month["sms"] == 1_000_000  # 1M messages
    assert month["run_start"] >= 300_000  # every checkout starts an abandoned-checkout run
    # checkouts, orders, and the product views the bus publishes (crm.outbox: only of a shopper with an address),
    # at least one for each browse abandonment started
    assert month["trigger_check"] >= 300_000 + 300_000 + 150_000
    assert bench.REACHABLE_VIEWS < 2_400_000


def _model(service: str, operation: str) -> Any:
    return SimpleNamespace(name=operation, service_model=SimpleNamespace(service_name=service))


def test_the_meter_counts_only_inside_the_flows_function_but_times_every_send(bench: ModuleType) -> None:
    meter = bench.FlowsMeter()
    params = {"Destination": {"ToAddresses": ["Ada@Example.com"]}}
    meter._after({}, _model("sesv2", "SendEmail"), {"bench_params": params})
    assert "ada@example.com" in meter.sends and not meter.counts
    meter.local.flows = True
    meter._after({}, _model("sesv2", "SendEmail"), {"bench_params": params})
    meter._after({}, _model("sns", "Publish"), {"bench_params": {"PhoneNumber": "+12127365000", "Message": "x"}})
    assert meter.counts["req", "sesv2", "SendEmail"] == 1 and meter.counts["unit", "ses"] == 1
    assert meter.counts["unit", "sms"] == 1
    other = threading.Thread(target=meter._after, args=({}, _model("sesv2", "SendEmail"), {"bench_params": params}))
    other.start()
    other.join()
    assert meter.counts["req", "sesv2", "SendEmail"] == 1, "another thread (the profiles function) is not counted"


def test_an_invocation_counts_lambda_the_queue_and_wake_ups(bench: ModuleType) -> None:
    meter = bench.FlowsMeter()
    meter.invoking([{"body": '{"kind": "wake", "run_id": "r"}'}, {"body": '{"detail-type": "CheckoutStarted"}'}])
    per_batch, per_send = bench.RECORDS_PER_BATCH, bench.EVENTS_PER_SEND
    assert meter.counts["unit", "lambda"] == 2 / per_batch
    # The wake-up's send by the Scheduler, the event's share of the outbox's SendMessageBatch; receive and delete
    # per batch.
    assert meter.counts["unit", "sqs"] == pytest.approx(1 + 1 / per_send + 2 * 2 / per_batch)
    assert meter.counts["unit", "scheduler"] == 1
    assert 1 < per_send <= 10


def test_the_meter_times_the_outbox_sending_a_flow_event(bench: ModuleType) -> None:
    meter = bench.FlowsMeter()
    body = '{"version":"0","source":"crm","detail-type":"CheckoutStarted","detail":{}}'
    meter._after({}, _model("sqs", "SendMessageBatch"), {"bench_params": {"Entries": [
        {"Id": "0", "MessageBody": body}, {"Id": "1", "MessageBody": '{"kind":"wake"}'}]}})
    assert [kind for _, kind in meter.published] == ["CheckoutStarted"] and not meter.counts


def test_the_flows_mix_is_the_reference_months(bench: ModuleType) -> None:
    month, mix = bench.REFERENCE_MONTH, bench.FLOW_MIX
    for kind in ("run_start", "delay", "exit_on_event"):
        assert sum(kinds.get(kind, 0) for kinds in mix.values()) == month[kind]
    assert set(mix) <= set(bench.BUILTIN_FLOWS)


def test_a_batch_counts_on_each_flow_by_its_share_of_the_messages(bench: ModuleType) -> None:
    mix = {"a": {"run_start": 500}, "b": {"delay": 100}}
    chance = bench.flows_per_batch(mix, 1_000, 2.0)
    assert chance == pytest.approx({"a": 1 - 0.5**2, "b": 1 - 0.9**2})
    assert bench.flows_per_batch(mix, 1_000, 1.0) == pytest.approx({"a": 0.5, "b": 0.1})  # one message: its flow


def test_counter_writes_are_priced_per_batch_at_each_flows_fullest_item(bench: ModuleType) -> None:
    month = bench.REFERENCE_MONTH
    writes = bench.counter_writes(month, 10.0)
    assert writes.batches == bench.queue_messages(month) / 10.0
    assert writes.deliveries == sum(sum(kinds.values()) for kinds in bench.FLOW_MIX.values())
    per_batch = writes.per_batch
    assert 1 < per_batch["req", "dynamodb", "UpdateItem"] < len(bench.FLOW_MIX)  # more than one flow, not all
    assert per_batch["unit", "wru"] == pytest.approx(sum(
        chance * bench.write_units(writes.item_bytes[flow]) for flow, chance in writes.chance.items()))
    # A bigger batch: fewer batches, each counting on more flows; fewer writes in all.
    bigger = bench.counter_writes(month, 20.0)
    assert bigger.per_batch["req", "dynamodb", "UpdateItem"] > per_batch["req", "dynamodb", "UpdateItem"]
    assert bigger.batches * bigger.per_batch["unit", "wru"] < writes.batches * per_batch["unit", "wru"]


def test_the_fullest_item_holds_every_row_on_the_first_step_rows_item(bench: ModuleType) -> None:
    flow = bench.ABANDONED_CHECKOUT
    item = bench.fullest_counter_item("ws", flow, bench.BUILTIN_FLOWS[flow])
    assert item["sk"]["S"].endswith("#email_1#-")  # email_1 < email_2 < wait_24h < wait_4h
    assert "|s" in item and "email_2|s" in item and "-|e" in item  # sent, email_2's sent, entered
    assert "wait_4h|EOrderPlaced" in item and "-|S" in item  # exited:exit_event:OrderPlaced, exited:superseded
    assert bench.item_size(item) < 1024  # 1 WRU a write
    before = bench.fullest_counter_item("ws", flow, bench.BUILTIN_FLOWS[flow], bench.long_counter_attribute)
    assert "n:sent" in before and "o:email_2|-|sent" in before and "o:wait_4h|-|exited:exit_event:OrderPlaced" in before
    assert len(before) == len(item)  # the same counters, named long
    assert bench.item_size(before) > 1024  # priced at 2 WRU a write, as DynamoDB bills an item past 1 KB


def test_the_designs_priced_differ_only_in_the_counters_writes(bench: ModuleType) -> None:
    kinds = {"today": {"email": _counts(3, wru=4.0)}, "reads_before": {"email": _counts(4, wru=3.0)},
             "held": {"email": _counts(3, wru=3.0)}}
    month = bench.REFERENCE_MONTH
    designs = bench.priced(kinds, month, 20.0, 10.0)  # this design's batches of 20, the designs before's of 10
    writes, before = bench.counter_writes(month, 20.0), bench.counter_writes(month, 10.0)
    today, per_delivery, held = (designs[name] for name in ("today", "per_delivery", "held"))
    assert today == (kinds["today"], dict(month))
    assert per_delivery[0]["email"] == held[0]["email"] == kinds["held"]["email"]
    assert per_delivery[1][bench.COUNTER_FLUSH] == before.deliveries
    assert held[1][bench.COUNTER_FLUSH] == writes.batches
    assert held[0][bench.COUNTER_FLUSH] == writes.per_batch
    assert held[1][bench.IDLE_RECEIVES] == bench.idle_receives(month, 20.0)
    long_names = designs["long_names"]  # the labelled before: the same writes at the long names' item sizes
    assert long_names[1][bench.COUNTER_FLUSH] == before.batches and long_names[0]["email"] == kinds["held"]["email"]
    assert long_names[0][bench.COUNTER_FLUSH]["unit", "wru"] > before.per_batch["unit", "wru"]
    reads_before = designs["reads_before"]  # the labelled before of the runs' reads: its steps, at its window
    assert reads_before[0] == {**kinds["reads_before"], bench.COUNTER_FLUSH: before.per_batch,
                               bench.IDLE_RECEIVES: bench.IDLE_RECEIVE}
    assert reads_before[1] == long_names[1] == {**month, bench.COUNTER_FLUSH: before.batches,
                                                bench.IDLE_RECEIVES: bench.idle_receives(month, 10.0)}


def test_a_longer_window_saves_deletes_invocations_and_counter_writes_never_the_idle_receives(
        bench: ModuleType) -> None:
    month = bench.REFERENCE_MONTH
    polls = bench.SQS_POLLERS * bench.SECONDS_PER_MONTH / bench.LONG_POLL_S
    messages = bench.queue_messages(month)
    # Batches of one message each: far more receives than idle polls, none left over.
    assert bench.idle_receives(month, 1.0) == 0
    # Batches rarer than the polls: the receives are the polls, whatever the batch.
    for per_batch in (messages / polls * 2, messages / polls * 10):
        assert messages / per_batch + bench.idle_receives(month, per_batch) == pytest.approx(polls)
    shape = {bench.MESSAGES: 2.0, ("unit", "lambda"): 2 / 10, ("unit", "sqs"): 1 + 2 * 2 / 10, ("unit", "rru"): 3.0}
    wider = bench.at_batch(shape, 10.0, 30.0)
    assert wider[("unit", "lambda")] == pytest.approx(2 / 30)
    assert wider[("unit", "sqs")] == pytest.approx(1 + 2 * 2 / 30)  # the sends stay; the batch's two shared wider
    assert wider[("unit", "rru")] == 3.0 and wider[bench.MESSAGES] == 2.0
    assert bench.at_batch({("unit", "rru"): 1.0}, 10.0, 30.0) == {("unit", "rru"): 1.0}  # no message: nothing shared


def test_this_design_is_priced_at_the_templates_window_and_its_before_at_the_window_before(bench: ModuleType) -> None:
    measured = {"today": {"heard": {bench.MESSAGES: 1.0, ("unit", "sqs"): 3.0}},
                "held": {"heard": {bench.MESSAGES: 1.0, ("unit", "lambda"): 1 / bench.RECORDS_PER_BATCH_BEFORE}}}
    designs = bench.with_window(measured)
    assert designs["today"] == measured["today"] and designs["window_before"] == measured["held"]
    assert designs["held"]["heard"][("unit", "lambda")] == pytest.approx(1 / bench.RECORDS_PER_BATCH)
    assert list(designs)[-1] == "held"  # the last: the report's "after"
    assert bench.flows_source(bench.TEMPLATE).window_s > bench.WINDOW_BEFORE_S
    assert bench.RECORDS_PER_BATCH > bench.RECORDS_PER_BATCH_BEFORE


def test_a_design_writing_counters_per_batch_leaves_them_out_of_the_measured_steps(bench: ModuleType) -> None:
    meter = bench.FlowsMeter()
    meter.local.flows = True
    update = {"Key": {"pk": {"S": "WS#w#FLOWSTATS#f"}, "sk": {"S": "2026-12-04#-#-"}},
              "ExpressionAttributeValues": {":n0": {"N": "1"}}}
    run = {"Key": {"pk": {"S": "WS#w#PROFILE#p"}, "sk": {"S": "FLOWRUN#r"}}}
    meter._after({}, _model("dynamodb", "UpdateItem"), {"bench_params": update})
    assert meter.counts["req", "dynamodb", "UpdateItem"] == 1  # today's design: measured
    meter.counters_apart = True
    meter._after({}, _model("dynamodb", "UpdateItem"), {"bench_params": update})
    meter._after({}, _model("dynamodb", "UpdateItem"), {"bench_params": run})
    assert meter.counts["req", "dynamodb", "UpdateItem"] == 2  # the run's, not the counters'


def test_the_labelled_before_hears_a_start_by_the_events_type_alone(bench: ModuleType) -> None:
    from crm.flows.actions import FlowEvent
    from crm.flows.builtin import BUILTIN_FLOWS, VIP
    from crm.flows.catalogue import hears
    from crm.models.flows import FlowRecord, FlowStatus

    from tests.builders import NOW

    vip = FlowRecord(workspace_id="w", flow_id=VIP, status=FlowStatus.LIVE, version=1,
                     definition=BUILTIN_FLOWS[VIP], created_at=NOW, updated_at=NOW)
    other = FlowEvent(type="SegmentEntered", event_id="e", workspace_id="w", profile_id="p", occurred_at=NOW,
                      detail={"segment_id": bench.SEGMENT_OTHER})
    assert bench.hears_by_type([vip], other) and not hears([vip], other)
    measured = {"hears_before": {"segment_other": _counts(2, rru=2.0), "heard_filtered": _counts(2, rru=2.0)},
                "held": {"segment_other": {}, "heard_filtered": {}}}
    heard = bench.start_heard(measured)
    assert heard["segment_other"] == {"before": {"requests": 2, "rru": 2.0}, "after": {"requests": 0, "rru": 0}}
    assert "| 2.00 -> 0.00 | 2.00 -> 0.00 |" in bench.what_a_start_hears(measured)[2]


def test_a_checks_read_of_the_runs_grows_a_unit_per_4_kb_of_runs_held(bench: ModuleType) -> None:
    rows = bench.runs_read(1024, {"trigger_check": 2_000_000})
    by_runs = {runs: (size, units, extra) for runs, size, units, extra in rows}
    assert by_runs[1] == (1024, 1.0, Decimal("0.00"))  # a new shopper's: what the shapes measure
    assert by_runs[6] == (6144, 2.0, Decimal("0.25"))  # one unit more a check: 2M x $0.125/M
    assert by_runs[100][1] == 25.0 and by_runs[100][2] == Decimal("6.00")
