"""SNS's SMS delivery status lines and CloudWatch Logs' subscription filter patterns, as the local runtime
emulates them (crm_local.sms_status)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from crm_local.sms_status import SmsPublished, log_group, matches, status_line

AT = datetime(2026, 12, 4, 2, 13, 7, 120_456, tzinfo=UTC)


def test_a_delivered_line_is_snss_documented_json() -> None:
    delivered, line = status_line(SmsPublished("m-1", "+14255550100", "Promotional", opted_out=False), AT)
    assert delivered
    found = json.loads(line)
    assert found["notification"] == {"messageId": "m-1", "timestamp": "2026-12-04 02:13:07.120"}
    assert found["status"] == "SUCCESS"
    assert {"destination", "smsType", "providerResponse", "priceInUSD", "numberOfMessageParts", "mcc", "mnc",
            "dwellTimeMs", "dwellTimeMsUntilDeviceAck", "phoneCarrier"} == set(found["delivery"])


def test_failures_opted_out_and_the_simulators_failing_numbers() -> None:
    failed, line = status_line(SmsPublished("m-2", "+61455944039", "Transactional", opted_out=False), AT)
    assert not failed and json.loads(line)["status"] == "FAILURE"
    opted_out, line = status_line(SmsPublished("m-3", "+61455944038", "Promotional", opted_out=True), AT)
    assert not opted_out and json.loads(line)["delivery"]["providerResponse"] == "Phone number is opted out"
    assert status_line(SmsPublished("m-4", "+61455944038", "Promotional", opted_out=False), AT)[0]


def test_the_log_groups() -> None:
    assert log_group("eu-west-1", "1", success=True) == "sns/eu-west-1/1/DirectPublishToPhoneNumber"
    assert log_group("eu-west-1", "1", success=False) == "sns/eu-west-1/1/DirectPublishToPhoneNumber/Failure"


def test_filter_patterns() -> None:
    _, line = status_line(SmsPublished("m-1", "+14255550100", "Promotional", opted_out=False), AT)
    assert matches("", line) and matches('{ $.status = "SUCCESS" }', line)
    assert matches('{ $.status = "SUCCESS" && $.delivery.smsType = Promotional }', line)
    assert not matches('{ $.status = "FAILURE" }', line) and not matches('{ $.delivery.missing = "x" }', line)
    assert matches('{ $.status != "FAILURE" }', line)
    with pytest.raises(ValueError, match="not emulated"):
        matches("[ip, user, status=200]", line)
