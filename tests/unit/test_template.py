"""template.yaml: lint-clean, translatable by SAM, wired the way the functions expect."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from crm.adapters.bigcommerce import TIMEOUT_SECONDS as BIGCOMMERCE_TIMEOUT_SECONDS
from crm.adapters.segments import EXPIRES_AT
from crm.config import Settings
from crm.segments.exports import EXPORT_FILES_KEPT_DAYS, GIVE_UP_AFTER
from crm.segments.runs import DAILY_RUN_HOUR
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioner
from crm_local.template import Stack

from tests.builders import TEMPLATE
from tests.iam import star_is_confined

FUNCTIONS = ("WebhooksFunction", "TrackFunction", "ProfilesFunction", "OutboxFunction", "ApiFunction",
             "SegmentRunsFunction", "SegmentTasksFunction", "SegmentRefreshFunction", "ExportsFunction",
             "PrivacyFunction", "FlowsFunction", "PredictionsScheduleFunction", "PredictionsFunction",
             "ConsoleFunction")
# The functions that fit the prediction models: they also carry numpy and scipy (the science layer).
FITTING = ("PredictionsScheduleFunction", "PredictionsFunction")

# What each function's code needs: the settings it reads, and the calls its adapters make.
NEEDS: dict[str, tuple[set[str], set[tuple[str, str]]]] = {
    "WebhooksFunction": ({"TABLE_NAME", "ARCHIVE_BUCKET", "INGEST_QUEUE_URL"},
                         {("dynamodb:GetItem", "Table"), ("s3:PutObject", "ArchiveBucket"),
                          ("sqs:SendMessage", "IngestQueue")}),
    "TrackFunction": ({"TABLE_NAME", "ARCHIVE_BUCKET", "INGEST_QUEUE_URL"},
                      {("dynamodb:GetItem", "Table"), ("s3:PutObject", "ArchiveBucket"),
                       ("sqs:SendMessage", "IngestQueue")}),
    "ProfilesFunction": ({"TABLE_NAME", "ARCHIVE_BUCKET", "ARCHIVE_STREAM", "INGEST_DLQ_URL", "PRIVACY_QUEUE_URL"},
                         {("firehose:PutRecordBatch", "ArchiveStream"),
                          ("dynamodb:GetItem", "Table"), ("dynamodb:BatchGetItem", "Table"),
                          ("dynamodb:PutItem", "Table"), ("s3:GetObject", "ArchiveBucket"),
                          ("sqs:SendMessage", "IngestDeadLetterQueue"), ("sqs:SendMessage", "PrivacyQueue")}),
    "OutboxFunction": ({"TABLE_NAME", "EVENT_BUS_NAME"}, {("events:PutEvents", "EventBus")}),
    "ApiFunction": ({"TABLE_NAME", "SEGMENT_TASKS_URL", "EXPORT_QUEUE_URL", "EXPORT_BUCKET"}, {
        *((f"dynamodb:{action}", "Table") for action in (
            "GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "BatchWriteItem", "DescribeTable")),
        ("sqs:SendMessage", "SegmentTasksQueue"), ("sqs:SendMessage", "ExportQueue"),
        ("s3:GetObject", "ExportsBucket")}),  # presigned download URLs carry their signer's rights
    "SegmentRunsFunction": ({"TABLE_NAME", "SEGMENT_TASKS_URL"},
                            {("dynamodb:DescribeTable", "Table"), ("dynamodb:Query", "Table"),
                             ("dynamodb:PutItem", "Table"), ("sqs:SendMessage", "SegmentTasksQueue")}),
    "SegmentTasksFunction": ({"TABLE_NAME", "SEGMENT_TASKS_URL", "ARCHIVE_BUCKET"},
                             {("dynamodb:Query", "Table"), ("dynamodb:UpdateItem", "Table"),
                              ("dynamodb:ConditionCheckItem", "Table"), ("s3:PutObject", "ArchiveBucket"),
                              ("s3:GetObject", "ArchiveBucket"), ("sqs:SendMessage", "SegmentTasksQueue")}),
    "SegmentRefreshFunction": ({"TABLE_NAME"}, {("dynamodb:GetItem", "Table"), ("dynamodb:PutItem", "Table"),
                                                ("dynamodb:BatchWriteItem", "Table")}),
    "ExportsFunction": ({"TABLE_NAME", "EXPORT_BUCKET", "EXPORT_MAX_RECEIVES"}, {
        *((f"dynamodb:{action}", "Table") for action in ("GetItem", "BatchGetItem", "Query", "PutItem",
                                                          "UpdateItem")),
        # CreateMultipartUpload, UploadPart and CompleteMultipartUpload are all authorised by s3:PutObject.
        ("s3:PutObject", "ExportsBucket"), ("s3:AbortMultipartUpload", "ExportsBucket"),
        ("s3:DeleteObject", "ExportsBucket")}),
    "PrivacyFunction": ({"TABLE_NAME", "ARCHIVE_BUCKET", "PRIVACY_QUEUE_URL", "SCHEDULE_GROUP"}, {
        *((f"dynamodb:{action}", "Table") for action in ("GetItem", "BatchGetItem", "Query", "Scan", "PutItem",
                                                          "DeleteItem", "BatchWriteItem")),
        *((f"s3:{action}", "ArchiveBucket") for action in ("ListBucket", "GetObject", "PutObject", "DeleteObject")),
        ("sqs:SendMessage", "PrivacyQueue"), ("scheduler:DeleteSchedule", "FlowSchedules")}),
    "FlowsFunction": ({"TABLE_NAME", "FLOWS_QUEUE_ARN", "SCHEDULE_GROUP", "SCHEDULER_ROLE_ARN"}, {
        *((f"dynamodb:{action}", "Table") for action in ("GetItem", "BatchGetItem", "Query", "PutItem",
                                                          "UpdateItem", "BatchWriteItem")),
        ("scheduler:CreateSchedule", "FlowSchedules"), ("scheduler:DeleteSchedule", "FlowSchedules"),
        ("iam:PassRole", "FlowsSchedulerRole"), ("sqs:ReceiveMessage", "FlowsQueue")}),
    "PredictionsScheduleFunction": ({"TABLE_NAME", "PREDICTIONS_QUEUE_URL"},
                                    {("dynamodb:Query", "Table"), ("sqs:SendMessage", "PredictionsQueue")}),
    "PredictionsFunction": ({"TABLE_NAME", "ARCHIVE_BUCKET", "PREDICTIONS_QUEUE_URL"}, {
        *((f"dynamodb:{action}", "Table") for action in ("GetItem", "BatchGetItem", "PutItem", "UpdateItem")),
        ("sqs:ReceiveMessage", "PredictionsQueue"), ("sqs:SendMessage", "PredictionsQueue"),
        ("s3:GetObject", "ArchiveBucket")}),
    "ConsoleFunction": ({"TABLE_NAME", "SEGMENT_TASKS_URL", "CONSOLE_USER_POOL_ID", "CONSOLE_CLIENT_ID",
                         "CONSOLE_SESSION_SECRET"}, {
        *((f"dynamodb:{action}", "Table") for action in ("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem",
                                                          "DescribeTable")),
        ("sqs:SendMessage", "SegmentTasksQueue"), ("secretsmanager:GetSecretValue", "ConsoleSessionSecret"),
        *((f"cognito-idp:{action}", "ConsoleUserPool") for action in (
            "AdminInitiateAuth", "AdminRespondToAuthChallenge", "AdminGetUser")),
        # Settings: an API key created (its workspace checked) and revoked; the workspace's users managed.
        ("dynamodb:ConditionCheckItem", "Table"), *((f"cognito-idp:{action}", "ConsoleUserPool") for action in (
            "ListUsers", "AdminCreateUser", "AdminUpdateUserAttributes", "AdminDisableUser"))}),
}


def test_cfn_lint_passes() -> None:
    matches = lint(TEMPLATE.read_text(), regions=["us-east-1"])
    assert [str(m) for m in matches] == []


def test_cfn_lint_would_catch_a_broken_template() -> None:
    broken = re.sub(r"VisibilityTimeout: \d+", "VisibilityTimeout: 999999", TEMPLATE.read_text(), count=1)
    assert [m.rule.id for m in lint(broken, regions=["us-east-1"])] == ["E3034"]


def test_every_function_is_translated(stack: Stack) -> None:
    assert set(stack.of_type("AWS::Lambda::Function")) == set(FUNCTIONS)
    for name in FUNCTIONS:
        folder = ("segments" if name.startswith("Segment") else "predictions" if name in FITTING
                  else name.removesuffix("Function").lower())
        assert stack.code_paths[name] == TEMPLATE.parent / "functions" / folder


@pytest.mark.parametrize("name", FUNCTIONS)
def test_handler_names_an_object_in_the_function_code(stack: Stack, name: str) -> None:
    handler = stack.resources[name]["Properties"]["Handler"]
    alias = f"crm_function_{name}"
    loaded_before = alias in sys.modules
    try:
        assert callable(load_handler(stack.code_paths[name], handler, name))
    finally:
        # Loaded here without the function's environment (the flows function's metrics namespace is read when
        # its module is): a later test in this process must load it again under its own.
        if not loaded_before:
            del sys.modules[alias]


def _mappings(stack: Stack, function: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in stack.of_type("AWS::Lambda::EventSourceMapping").values()
            if r["Properties"]["FunctionName"] == {"Ref": function}]


def test_profiles_function_reads_the_ingest_queue_reporting_item_failures(stack: Stack) -> None:
    [mapping] = _mappings(stack, "ProfilesFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    queue = stack.resources["IngestQueue"]["Properties"]
    timeout = stack.resources["ProfilesFunction"]["Properties"]["Timeout"]
    # Lambda's guidance for SQS sources; the window gathers several messages per invocation at thin traffic.
    assert 0 < mapping["MaximumBatchingWindowInSeconds"] <= 20
    assert queue["VisibilityTimeout"] >= 6 * timeout + mapping["MaximumBatchingWindowInSeconds"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}


def test_profiles_function_outlasts_a_record_that_waits_on_the_bigcommerce_api(stack: Stack) -> None:
    timeout = stack.resources["ProfilesFunction"]["Properties"]["Timeout"]
    assert timeout >= 4 * BIGCOMMERCE_TIMEOUT_SECONDS
    assert stack.resources["IngestQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout
    # The handler stops starting records early enough for the one started last to finish within the timeout,
    # and still has time to start several.
    load_handler(stack.code_paths["ProfilesFunction"], "app.handler", "ProfilesFunction")
    reserve_ms = sys.modules["crm_function_ProfilesFunction"].RECORD_RESERVE_MS
    assert BIGCOMMERCE_TIMEOUT_SECONDS * 1000 < reserve_ms <= timeout * 1000 / 2


def test_privacy_function_carries_out_one_request_at_a_time_from_its_own_queue(stack: Stack) -> None:
    [mapping] = _mappings(stack, "PrivacyFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["PrivacyQueue", "Arn"]}
    assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    assert mapping["BatchSize"] == 1
    function = stack.resources["PrivacyFunction"]["Properties"]
    assert function["Timeout"] == 900
    queue = stack.resources["PrivacyQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["PrivacyDeadLetterQueue", "Arn"]}
    [alarm] = [r["Properties"] for r in stack.of_type("AWS::CloudWatch::Alarm").values()
               if r["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["PrivacyDeadLetterQueue", "QueueName"]}]
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}]
    # The profiles function only hands requests over: it no longer writes to the archive.
    profiles = _role(stack, "ProfilesFunction")
    writes = {action for statement in _statements(profiles) for action in _listed(statement["Action"])
              if action in ("s3:PutObject", "s3:DeleteObject", "s3:ListBucket")}
    assert writes == set()


def test_outbox_function_reads_the_table_stream_reporting_item_failures(stack: Stack) -> None:
    [mapping] = _mappings(stack, "OutboxFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    # The handler answers with batchItemFailures; without this, Lambda would ignore the answer.
    assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    stream = stack.resources["Table"]["Properties"]["StreamSpecification"]
    assert stream["StreamViewType"] in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")  # events_for reads NewImage


def test_the_table_expires_the_items_the_code_marks_to_expire(stack: Stack) -> None:
    ttl = stack.resources["Table"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": EXPIRES_AT, "Enabled": True}


def test_exports_function_reads_the_export_queue_one_job_at_a_time(stack: Stack) -> None:
    [mapping] = _mappings(stack, "ExportsFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["ExportQueue", "Arn"]}
    assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    assert mapping["BatchSize"] == 1
    queue = stack.resources["ExportQueue"]["Properties"]
    function = stack.resources["ExportsFunction"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ExportDeadLetterQueue", "Arn"]}
    # The worker records a failure on the queue's last delivery: it must know which one that is.
    receives = queue["RedrivePolicy"]["maxReceiveCount"]
    assert int(function["Environment"]["Variables"]["EXPORT_MAX_RECEIVES"]) == receives
    assert Settings.model_fields["export_max_receives"].default == receives
    # A job quiet for longer than every attempt can take is reported failed: not before they are all over.
    assert GIVE_UP_AFTER.total_seconds() > receives * queue["VisibilityTimeout"]


def test_export_files_expire_and_unfinished_uploads_are_aborted(stack: Stack) -> None:
    bucket = stack.resources["ExportsBucket"]["Properties"]
    [rule] = bucket["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["Prefix"]) == ("Enabled", "exports/")
    assert rule["ExpirationInDays"] == EXPORT_FILES_KEPT_DAYS  # what the API tells marketers
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def test_webhooks_and_api_have_no_event_source_mapping(stack: Stack) -> None:
    assert _mappings(stack, "WebhooksFunction") == []
    assert _mappings(stack, "TrackFunction") == []
    assert _mappings(stack, "ApiFunction") == []


def _routes(stack: Stack, api_type: str = "AWS::ApiGateway::RestApi") -> set[tuple[str, str, str]]:
    found = set()
    for api in stack.of_type(api_type).values():
        for path, methods in api["Properties"]["Body"]["paths"].items():
            for method, operation in methods.items():
                uri = json.dumps(operation["x-amazon-apigateway-integration"]["uri"])
                [function] = [f for f in FUNCTIONS if f"${{{f}.Arn}}" in uri]
                found.add((method.upper(), path, function))
    return found


CONSOLE_ROUTES = {
    *(("GET", path, "ConsoleFunction") for path in (
        "/console", "/console/sign-in", "/console/invitation", "/console/customers", "/console/customers/{profile_id}",
        "/console/customers/{profile_id}/timeline", "/console/segments", "/console/segments/{segment_id}",
        "/console/segments/{segment_id}/export", "/console/flows", "/console/static/{name}")),
    *(("POST", path, "ConsoleFunction") for path in (
        "/console/sign-in", "/console/sign-out", "/console/invitation", "/console/segments", "/console/flows/status",
        "/console/segments/preview")),
    # A flow's page and the template editor (docs/console.md).
    *(("GET", path, "ConsoleFunction") for path in (
        "/console/flows/{flow_id}", "/console/templates", "/console/templates/{template_id}")),
    *(("POST", path, "ConsoleFunction") for path in (
        "/console/flows/{flow_id}", "/console/flows/{flow_id}/test-send", "/console/templates/{template_id}",
        "/console/templates/{template_id}/preview", "/console/templates/{template_id}/rendered")),
    # The segment builder's form and a segment's asynchronous export.
    ("POST", "/console/segments/builder", "ConsoleFunction"),
    ("POST", "/console/segments/{segment_id}/exports", "ConsoleFunction"),
    ("GET", "/console/segments/{segment_id}/exports/{export_id}", "ConsoleFunction"),
    *(("GET", f"/console/settings{path}", "ConsoleFunction") for path in (
        "", "/stores", "/keys", "/users", "/messaging", "/currency")),
    *(("POST", f"/console/settings{path}", "ConsoleFunction") for path in (
        "/stores", "/stores/rotate", "/stores/retire", "/keys", "/keys/revoke", "/users", "/users/role",
        "/users/disable", "/messaging", "/currency")),
}


def test_api_routes(stack: Stack) -> None:
    assert _routes(stack) == {
        ("POST", "/webhooks/{platform}", "WebhooksFunction"),
        ("POST", "/events", "WebhooksFunction"),
        ("POST", "/track", "TrackFunction"),
        ("OPTIONS", "/track", "TrackFunction"),
        ("GET", "/unsubscribe/{token}", "TrackFunction"),
        ("POST", "/unsubscribe/{token}", "TrackFunction"),
        ("GET", "/confirm/{token}", "TrackFunction"),
        ("POST", "/confirm/{token}", "TrackFunction"),
        ("GET", "/r/{code}", "TrackFunction"),
        ("GET", "/customers", "ApiFunction"),
        ("GET", "/customers/{profile_id}", "ApiFunction"),
        ("GET", "/customers/{profile_id}/timeline", "ApiFunction"),
        ("GET", "/segments", "ApiFunction"),
        ("POST", "/segments", "ApiFunction"),
        ("POST", "/segments/preview", "ApiFunction"),
        ("GET", "/segments/settings", "ApiFunction"),
        ("PUT", "/segments/settings", "ApiFunction"),
        ("GET", "/segments/{segment_id}", "ApiFunction"),
        ("PUT", "/segments/{segment_id}", "ApiFunction"),
        ("DELETE", "/segments/{segment_id}", "ApiFunction"),
        ("POST", "/segments/{segment_id}/recompute", "ApiFunction"),
        ("GET", "/segments/{segment_id}/members", "ApiFunction"),
        ("GET", "/segments/{segment_id}/export", "ApiFunction"),
        ("POST", "/segments/{segment_id}/exports", "ApiFunction"),
        ("GET", "/segments/{segment_id}/exports/{export_id}", "ApiFunction"),
        ("GET", "/segment-runs/{run_id}", "ApiFunction"),
        ("GET", "/settings/currency", "ApiFunction"),
        ("PUT", "/settings/currency", "ApiFunction"),
        ("GET", "/settings/currency/jobs/{job_id}", "ApiFunction"),
        ("GET", "/settings/predictions", "ApiFunction"),
        ("PUT", "/settings/predictions", "ApiFunction"),
        ("GET", "/flows", "ApiFunction"),
        ("POST", "/flows", "ApiFunction"),
        ("GET", "/flows/{flow_id}", "ApiFunction"),
        ("PUT", "/flows/{flow_id}", "ApiFunction"),
        ("DELETE", "/flows/{flow_id}", "ApiFunction"),
        ("PUT", "/flows/{flow_id}/status", "ApiFunction"),
        ("GET", "/flows/{flow_id}/runs", "ApiFunction"),
        ("GET", "/flows/{flow_id}/stats", "ApiFunction"),
        ("GET", "/flows/{flow_id}/steps/{step_id}/stats", "ApiFunction"),
        ("GET", "/reports/{name}", "ApiFunction"),
        ("GET", "/products/{product}/related", "ApiFunction"),
        ("POST", "/flows/{flow_id}/test-send", "ApiFunction"),
        ("POST", "/flows/backtest", "ApiFunction"),
        ("GET", "/templates", "ApiFunction"),
        ("POST", "/templates", "ApiFunction"),
        ("GET", "/templates/{template_id}", "ApiFunction"),
        ("PUT", "/templates/{template_id}", "ApiFunction"),
        ("DELETE", "/templates/{template_id}", "ApiFunction"),
        ("GET", "/settings/messaging", "ApiFunction"),
        ("PUT", "/settings/messaging", "ApiFunction"),
        ("GET", "/unsubscribe/{token}", "TrackFunction"),
        ("POST", "/unsubscribe/{token}", "TrackFunction"),
        ("GET", "/confirm/{token}", "TrackFunction"),
        ("POST", "/confirm/{token}", "TrackFunction"),
        ("GET", "/r/{code}", "TrackFunction"),
        *CONSOLE_ROUTES,
    }


INGEST_ROUTES = {
    ("POST", "/webhooks/{platform}", "WebhooksFunction"),
    ("POST", "/events", "WebhooksFunction"),
    ("POST", "/track", "TrackFunction"),
    ("OPTIONS", "/track", "TrackFunction"),
}


def test_the_front_doors_volume_is_on_the_http_api_with_the_rest_event_shape(stack: Stack) -> None:
    assert _routes(stack, "AWS::ApiGatewayV2::Api") == INGEST_ROUTES
    # The same routes stay on the REST API for stores and snippets set up before the HTTP API.
    assert _routes(stack) >= INGEST_ROUTES
    [api] = stack.of_type("AWS::ApiGatewayV2::Api").values()
    integrations = [o["x-amazon-apigateway-integration"] for methods in api["Properties"]["Body"]["paths"].values()
                    for o in methods.values()]
    # Chalice reads API Gateway's REST (1.0) event: 2.0 has no requestContext.resourcePath to route on.
    assert {i["payloadFormatVersion"] for i in integrations} == {"1.0"}
    assert "CorsConfiguration" not in api["Properties"]  # the track function answers preflights per store


def test_the_local_runtime_serves_every_route_once_the_http_apis_first(stack: Stack) -> None:
    served = Provisioner(stack, "local", "us-east-1").routes()
    assert len(served) == len(set(served))
    assert set(served) == _routes(stack) | _routes(stack, "AWS::ApiGatewayV2::Api")
    assert set(served[:len(INGEST_ROUTES)]) == INGEST_ROUTES


def test_track_is_throttled_by_api_gateway_not_only_in_memory(stack: Stack) -> None:
    # The function's token bucket is per container; only the stages' settings bound the total.
    [stage] = stack.of_type("AWS::ApiGateway::Stage").values()
    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in stage["Properties"]["MethodSettings"]}
    track = settings[("/~1track", "POST")]
    assert 0 < track["ThrottlingRateLimit"] <= track["ThrottlingBurstLimit"]
    [ingest_stage] = stack.of_type("AWS::ApiGatewayV2::Stage").values()
    ingest_track = ingest_stage["Properties"]["RouteSettings"]["POST /track"]
    assert 0 < ingest_track["ThrottlingRateLimit"] <= ingest_track["ThrottlingBurstLimit"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_environment_has_what_its_code_reads(stack: Stack, name: str) -> None:
    variables = stack.resources[name]["Properties"]["Environment"]["Variables"]
    needed, _ = NEEDS[name]
    assert needed <= set(variables)


def _role(stack: Stack, function: str) -> dict[str, Any]:
    role = stack.resources[function]["Properties"]["Role"]
    assert role == {"Fn::GetAtt": [f"{function}Role", "Arn"]}
    resource = stack.resources[f"{function}Role"]
    assert resource["Type"] == "AWS::IAM::Role"
    return resource["Properties"]  # type: ignore[no-any-return]


def _statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role.get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        yield from statements if isinstance(statements, list) else [statements]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _names(resource: Any) -> set[str]:
    """The logical ids a statement's Resource refers to."""
    text = json.dumps(resource)
    return {name for name in ("Table", "ArchiveBucket", "IngestQueue", "IngestDeadLetterQueue", "EventBus",
                              "OutboxDeadLetterQueue", "SegmentTasksQueue", "ExportsBucket", "ExportQueue",
                              "ExportDeadLetterQueue", "PrivacyQueue", "FlowsQueue", "FlowSchedules",
                              "FlowsSchedulerRole", "PredictionsQueue", "ConsoleUserPool", "ArchiveStream",
                              "ConsoleSessionSecret")
            if f'"{name}"' in text or f"${{{name}." in text or f"${{{name}}}" in text}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_has_its_own_least_privilege_role(stack: Stack, name: str) -> None:
    role = _role(stack, name)
    statements = list(_statements(role))
    assert statements, f"{name} has no Policies-derived statements"
    for statement in statements:
        assert statement["Effect"] == "Allow" or (statement["Effect"] == "Deny" and statement["Resource"] != "*")
        for action in _listed(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{name} allows {action}"
        for resource in _listed(statement["Resource"]):
            assert resource != "*" or star_is_confined(statement, statements), \
                f"{name} allows {statement['Action']} on every resource"
    assert "NotAction" not in json.dumps(statements)
    managed = {arn.rsplit("/", 1)[-1] for arn in role.get("ManagedPolicyArns", [])}
    assert managed <= {"AWSLambdaBasicExecutionRole", "AWSLambdaSQSQueueExecutionRole",
                       "AWSLambdaDynamoDBExecutionRole"}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_may_make_the_calls_its_code_makes(stack: Stack, name: str) -> None:
    granted = {(action, target) for statement in _statements(_role(stack, name))
               for action in _listed(statement["Action"]) for target in _names(statement["Resource"])}
    _, needed = NEEDS[name]
    assert needed <= granted


def test_functions_share_the_crm_layer_and_only_those_that_fit_carry_the_science_layer(stack: Stack) -> None:
    # SAM names each translated layer version by its logical id and a hash of its content.
    crm, science = (next(layer for layer in stack.of_type("AWS::Lambda::LayerVersion") if layer.startswith(name))
                    for name in ("CrmLayer", "ScienceLayer"))
    for name in FUNCTIONS:
        fitting = [{"Ref": science}] if name in FITTING else []
        assert stack.resources[name]["Properties"]["Layers"] == [{"Ref": crm}, *fitting], name
    assert Path(stack.code_paths["CrmLayer"]) == TEMPLATE.parent / "shared"
    assert Path(stack.code_paths["ScienceLayer"]) == TEMPLATE.parent / "layers" / "science"


def test_the_daily_fit_is_queued_at_the_segment_runs_hour(stack: Stack) -> None:
    """The fit reads the profiles the day's segment run read (crm.predictions.daily): it is queued at the
    run's hour and waits for it; queued hours later it would find the run's files from the day before."""
    rules = [r["Properties"] for r in stack.of_type("AWS::Events::Rule").values()
             if any(t["Arn"] == {"Fn::GetAtt": ["PredictionsScheduleFunction", "Arn"]}
                    for t in r["Properties"]["Targets"])]
    assert [rule["ScheduleExpression"] for rule in rules] == [f"cron(0 {DAILY_RUN_HOUR} * * ? *)"]


def test_predictions_function_gathers_a_minute_of_orders_within_the_queues_visibility(stack: Stack) -> None:
    [mapping] = _mappings(stack, "PredictionsFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["PredictionsQueue", "Arn"]}
    assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    # Each batch reads a workspace's kept fit once and costs one receive, delete and invocation.
    assert mapping["MaximumBatchingWindowInSeconds"] == 60 and mapping["BatchSize"] >= 4
    timeout = stack.resources["PredictionsFunction"]["Properties"]["Timeout"]
    visibility = stack.resources["PredictionsQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * timeout + mapping["MaximumBatchingWindowInSeconds"]


def test_flows_function_gathers_a_minute_of_messages_within_the_queues_visibility(stack: Stack) -> None:
    [mapping] = [m for m in _mappings(stack, "FlowsFunction")
                 if m["EventSourceArn"] == {"Fn::GetAtt": ["FlowsQueue", "Arn"]}]
    assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    # A batch shares a delete, an invocation and one counter write per flow (bench/flows.py); a step goes out
    # at most a minute late.
    assert 20 < mapping["MaximumBatchingWindowInSeconds"] <= 60 and mapping["BatchSize"] == 100
    timeout = stack.resources["FlowsFunction"]["Properties"]["Timeout"]
    visibility = stack.resources["FlowsQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * timeout + mapping["MaximumBatchingWindowInSeconds"]
