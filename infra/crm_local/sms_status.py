"""SNS's SMS delivery status, emulated: moto accepts a Publish to a phone number and logs nothing, so here each one
is logged as SNS logs it and delivered to the template's subscription on that log group, as in AWS.

SNS (with delivery status logging on: the account's ``DeliveryStatusIAMRole`` SMS attribute) writes one JSON line
per SMS to CloudWatch Logs, ``sns/{region}/{account}/DirectPublishToPhoneNumber`` when the carrier accepted it
and ``.../DirectPublishToPhoneNumber/Failure`` when it did not (SNS developer guide, "Viewing Amazon CloudWatch
metrics and logs for SMS")::

    {"notification": {"messageId": "...", "timestamp": "2026-12-04 02:13:07.120"},
     "delivery": {"mnc": 0, "numberOfMessageParts": 1, "destination": "+14255550100", "priceInUSD": 0.00581,
                  "smsType": "Promotional", "mcc": 310, "providerResponse": "Message has been accepted by phone
                  carrier", "dwellTimeMs": 212, "dwellTimeMsUntilDeviceAck": 1010, "phoneCarrier": "..."},
     "status": "SUCCESS"}

A ``AWS::Logs::SubscriptionFilter`` of the template on that group (kept by provisioning in
``Provisioned.log_subscriptions``) hands each line to its destination: for one of the template's functions, an
asynchronous invocation with ``{"awslogs": {"data": base64(gzip(DATA_MESSAGE))}}``. So does this, on a worker
thread of its own (Lambda's asynchronous invocation: the Publish does not wait), which ``LocalRuntime.wait_idle``
waits for. The lines are also written to moto's CloudWatch Logs (which keeps only lines within 14 days before
and 2 hours after the real time: with a fast-forwarded clock, moto drops them; the delivery does not depend on
it). Every number is delivered, except a number SNS has opted out (a STOP reply: "FAILURE", as SNS logs it)
and AWS's destination simulator numbers that fail (``FAILING_NUMBERS``). Sampling
(``DeliveryStatusSuccessSamplingRate``) is not emulated: every success is logged.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm.clock import utc_now
from moto.logs.models import logs_backends
from moto.sns.models import SNSBackend

from crm_local.provision import Provisioned

log = logging.getLogger("crm.local")

SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
# AWS End User Messaging SMS's destination simulator numbers that fail (docs: "Simulator phone numbers"); their
# success twins, and every other number, are delivered.
FAILING_NUMBERS = frozenset({"+61455944039", "+43676800442032", "+32460213923", "+56229140631", "+420790542287",
                             "+4525919215", "+37282720793", "+3584573979111", "+33755512502", "+85257048854"})
_ACCEPTED = "Message has been accepted by phone carrier"
_UNREACHABLE = "Phone is currently unreachable/unavailable"
_OPTED_OUT = "Phone number is opted out"


def log_group(region: str, account: str, success: bool) -> str:
    group = f"sns/{region}/{account}/DirectPublishToPhoneNumber"
    return group if success else f"{group}/Failure"


@dataclass(frozen=True)
class SmsPublished:
    message_id: str
    phone_number: str
    sms_type: str  # Promotional or Transactional
    opted_out: bool


def status_line(sms: SmsPublished, at: datetime) -> tuple[bool, str]:
    """Whether the SMS was delivered, and the line SNS logs for it."""
    failure = _OPTED_OUT if sms.opted_out else _UNREACHABLE if sms.phone_number in FAILING_NUMBERS else None
    delivery: dict[str, Any] = {
        "mnc": 0, "numberOfMessageParts": 1, "destination": sms.phone_number, "priceInUSD": 0.0 if failure else 0.00581,
        "smsType": sms.sms_type, "mcc": 0, "providerResponse": failure or _ACCEPTED, "dwellTimeMs": 212,
    }
    if failure is None:
        delivery.update(dwellTimeMsUntilDeviceAck=1010, phoneCarrier="crm-local")
    line = {"notification": {"messageId": sms.message_id,
                             "timestamp": at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"},
            "delivery": delivery, "status": FAILURE if failure else SUCCESS}
    return failure is None, json.dumps(line)


# A JSON filter pattern of equalities joined by && ({ $.status = "SUCCESS" && $.delivery.smsType = "Promotional" }):
# what a subscription on these groups needs; anything else is refused at start, not silently ignored.
_TERM = re.compile(r"""^\$\.([\w.]+)\s*(=|!=)\s*(?:"([^"]*)"|([^\s"]+))$""")


def _terms(pattern: str) -> list[tuple[list[str], bool, str]]:
    text = pattern.strip()
    if not text:
        return []
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"filter pattern {pattern!r} is not emulated (only '' or {{ $.field = value && ... }})")
    terms = []
    for term in text[1:-1].split("&&"):
        match = _TERM.match(term.strip())
        if match is None:
            raise ValueError(f"filter pattern {pattern!r} is not emulated (only '' or {{ $.field = value && ... }})")
        terms.append((match.group(1).split("."), match.group(2) == "=", match.group(3) or match.group(4)))
    return terms


def matches(pattern: str, line: str) -> bool:
    """Whether CloudWatch Logs' filter pattern takes the JSON line."""
    terms = _terms(pattern)
    if not terms:
        return True
    found: Any = json.loads(line)
    for path, equal, wanted in terms:
        value: Any = found
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if (str(value) == wanted if value is not None else False) != equal:
            return False
    return True


@dataclass(frozen=True)
class Subscription:
    log_group: str
    filter_name: str
    pattern: str
    function: str  # the destination function's logical id


def subscriptions(provisioned: Provisioned) -> list[Subscription]:
    """The template's subscription filters whose destination is one of its functions (others are logged and
    left out: Kinesis and Firehose destinations are not emulated)."""
    functions = {provisioned.physical[name].attributes.get("Arn"): name for name in provisioned.functions}
    found = []
    for subscription in provisioned.log_subscriptions:
        function = functions.get(str(subscription["DestinationArn"]))
        if function is None:
            log.warning("subscription filter %s: destination %s is not emulated", subscription["FilterName"],
                        subscription["DestinationArn"])
            continue
        _terms(str(subscription.get("FilterPattern") or ""))
        found.append(Subscription(str(subscription["LogGroupName"]), str(subscription["FilterName"]),
                                  str(subscription.get("FilterPattern") or ""), function))
    return found


def logs_event(account: str, group: str, stream: str, filters: list[str], lines: list[str],
               at: datetime) -> dict[str, Any]:
    """The event CloudWatch Logs invokes a subscription's function with."""
    millis = int(at.timestamp() * 1000)
    body = {"messageType": "DATA_MESSAGE", "owner": account, "logGroup": group, "logStream": stream,
            "subscriptionFilters": filters,
            "logEvents": [{"id": f"{uuid.uuid4().int:056d}", "timestamp": millis, "message": line}
                          for line in lines]}
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()}}


class Deliveries:
    """Asynchronous invocations, one at a time, in order; ``busy`` until each has returned."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[[dict[str, Any]], Any], dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sms-status", daemon=True)
        self._thread.start()

    def put(self, invoke: Callable[[dict[str, Any]], Any], event: dict[str, Any]) -> None:
        self._queue.put((invoke, event))

    def busy(self) -> bool:
        return self._queue.unfinished_tasks > 0

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                invoke, event = item
                try:
                    invoke(event)
                except Exception:  # Lambda would retry an asynchronous invocation twice, then drop it
                    log.exception("the SMS delivery status could not be delivered")
            finally:
                self._queue.task_done()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


def _write_log(account: str, region: str, group: str, stream: str, line: str, at: datetime) -> None:
    backend = logs_backends[account][region]
    if group not in backend.groups:
        backend.create_log_group(group, {})
    if stream not in backend.groups[group].streams:
        backend.create_log_stream(group, stream)
    backend.put_log_events(group, stream, [{"timestamp": int(at.timestamp() * 1000), "message": line}])


def _sms_type(attributes: Mapping[str, Any], account_default: str | None) -> str:
    value = attributes.get("AWS.SNS.SMS.SMSType") or {}
    chosen = value.get("StringValue") or value.get("Value") if isinstance(value, dict) else value
    return str(chosen or account_default or "Promotional")


_lock = threading.Lock()
_state: dict[str, Any] = {}
_wrapped: list[Callable[..., str]] = []


def _publish(self: SNSBackend, message: str, arn: str | None, phone_number: str | None = None, *args: Any,
             **kwargs: Any) -> str:
    message_id = _wrapped[0](self, message, arn, phone_number, *args, **kwargs)
    if phone_number:
        attributes = kwargs.get("message_attributes") or (args[1] if len(args) > 1 else None) or {}
        sms = SmsPublished(str(message_id), phone_number,
                           _sms_type(attributes, self.sms_attributes.get("DefaultSMSType")),
                           phone_number in self.opt_out_numbers)
        deliver(sms, self.account_id, self.region_name, utc_now())
    return str(message_id)


def deliver(sms: SmsPublished, account: str, region: str, at: datetime) -> None:
    """Log the SMS's delivery status as SNS does, and hand it to the subscriptions on its group."""
    success, line = status_line(sms, at)
    group = log_group(region, account, success)
    stream = uuid.uuid5(uuid.NAMESPACE_URL, sms.phone_number).hex
    _write_log(account, region, group, stream, line, at)
    with _lock:
        found: Iterable[Subscription] = _state.get("subscriptions", [])
        functions: Mapping[str, Callable[[dict[str, Any]], Any]] = _state.get("functions", {})
        deliveries: Deliveries | None = _state.get("deliveries")
    for subscription in found:
        if subscription.log_group == group and matches(subscription.pattern, line) and deliveries is not None:
            deliveries.put(functions[subscription.function],
                           logs_event(account, group, stream, [subscription.filter_name], [line], at))


def busy() -> bool:
    """Whether a delivery status is still on its way to a function."""
    with _lock:
        deliveries: Deliveries | None = _state.get("deliveries")
    return deliveries is not None and deliveries.busy()


def install(provisioned: Provisioned, functions: Mapping[str, Callable[[dict[str, Any]], Any]]) -> list[Subscription]:
    """Emulate SMS delivery status logging for the provisioned stack; ``functions``: invoke by logical id."""
    found = subscriptions(provisioned)
    with _lock:
        _state.update(subscriptions=found, functions=dict(functions), deliveries=Deliveries())
        if not _wrapped:
            _wrapped.append(SNSBackend.publish)
            SNSBackend.publish = _publish  # type: ignore[method-assign]
    return found


def uninstall() -> None:
    with _lock:
        deliveries: Deliveries | None = _state.pop("deliveries", None)
        _state.clear()
        if _wrapped:
            SNSBackend.publish = _wrapped.pop()  # type: ignore[method-assign]
    if deliveries is not None:
        deliveries.stop()
