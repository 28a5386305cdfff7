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
