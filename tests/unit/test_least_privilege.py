"""IAM after SAM's translation: exact resources, no AWS-managed policy, internet-facing reads bounded by key;
and checkov on template.yaml with 0 failed checks, every skip giving its reason."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from crm.adapters import keys
from crm_local.template import Stack, read_sam

from tests.builders import ROOT, TEMPLATE
from tests.iam import Call, allows, calls, star_is_confined

# Roles allowed an AWS-managed policy, and why: API Gateway writes every API's logs in an account and region
# with one role, so narrowing it to this stack's log group would break the other APIs there.
MANAGED_POLICY_ALLOWED = {"ApiGatewayLogsRole": {"AmazonAPIGatewayPushToCloudWatchLogs"}}

# DynamoDB actions that address no key: dynamodb:LeadingKeys cannot bound them (IAM finds no key to compare,
# and ForAllValues over nothing is true), so they must be listed in a statement of their own.
UNKEYED_ACTIONS = {"dynamodb:Scan", "dynamodb:DescribeTable", "dynamodb:DescribeStream", "dynamodb:GetRecords",
                   "dynamodb:GetShardIterator", "dynamodb:ListStreams"}

# The table partitions each internet-facing function (or the marketer API) may address, as keys.py builds them.
WORKSPACE, PROFILE = "ws1", "p1"
ALLOWED_KEYS = {
    "WebhooksFunction": [keys.store("shopify", "shop.example")],
    "TrackFunction": [keys.write_key("wk_1"), keys.store("shopify", "shop.example")],
    "ApiFunction": [keys.api_key("key"), keys.profile(WORKSPACE, PROFILE), keys.identity(WORKSPACE, "a@b.c"),
                    keys.segment(WORKSPACE, "s"), keys.segment_catalogue(WORKSPACE, "s"),
                    keys.segment_run(WORKSPACE, "r"), keys.export_job(WORKSPACE, "e"),
                    keys.segment_settings(WORKSPACE)],
}
# What none of them may address: another store's secrets, a workspace's shoppers (for the public ones).
EVERY_KEY = [keys.store("shopify", "shop.example"), keys.write_key("wk_1"), keys.api_key("key"),
             keys.workspace(WORKSPACE), keys.profile(WORKSPACE, PROFILE), keys.identity(WORKSPACE, "a@b.c"),
             keys.order(WORKSPACE, "st", "o"), keys.workspace_entry(WORKSPACE)]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _roles(stack: Stack) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in stack.of_type("AWS::IAM::Role").items()}


def _statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role.get("Policies", []):
        yield from _listed(policy["PolicyDocument"]["Statement"])


def _function_role(stack: Stack, function: str) -> dict[str, Any]:
    arn = stack.resources[function]["Properties"]["Role"]
    return _roles(stack)[arn["Fn::GetAtt"][0]]


def _leading_keys(statement: dict[str, Any]) -> list[str] | None:
    condition = statement.get("Condition", {}).get("ForAllValues:StringLike", {})
    found = condition.get("dynamodb:LeadingKeys")
    return None if found is None else _listed(found)


def test_no_role_allows_every_resource_or_every_action(stack: Stack) -> None:
    for name, role in _roles(stack).items():
        for statement in _statements(role):
            assert statement["Effect"] in ("Allow", "Deny") and "NotAction" not in statement \
                and "NotResource" not in statement
            for action in _listed(statement["Action"]):
                assert "*" not in action, f"{name} allows {action}"
            for resource in _listed(statement["Resource"]):
                assert resource != "*" or (statement["Effect"] == "Allow"
                                           and star_is_confined(statement, list(_statements(role)))), \
                    f"{name} allows {statement['Action']} on every resource"


def test_only_documented_roles_carry_aws_managed_policies(stack: Stack) -> None:
    # SAM's generated roles carry AWSLambdaBasicExecutionRole, AWSLambdaSQSQueueExecutionRole and
    # AWSLambdaDynamoDBExecutionRole: logs, any queue and any stream of the account (Resource "*").
    for name, role in _roles(stack).items():
        managed = {json.dumps(arn).rsplit("/", 1)[-1].strip('"}') for arn in role.get("ManagedPolicyArns", [])}
        assert managed <= MANAGED_POLICY_ALLOWED.get(name, set()), f"{name} carries {managed}"


def test_no_function_sets_policies_beside_its_own_role() -> None:
    # SAM ignores Policies when Role is given: a statement added there would silently not exist.
    for name, resource in read_sam(TEMPLATE)["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            assert "Role" in properties and "Policies" not in properties, name


@pytest.mark.parametrize("function", sorted(ALLOWED_KEYS))
def test_table_access_is_bounded_by_leading_keys(stack: Stack, function: str) -> None:
    patterns: list[str] = []
    for statement in _statements(_function_role(stack, function)):
        actions = {a for a in _listed(statement["Action"]) if a.startswith("dynamodb:")}
        if not actions:
            continue
        found = _leading_keys(statement)
        if found is None:
            assert actions <= UNKEYED_ACTIONS, f"{function} may {actions - UNKEYED_ACTIONS} any item"
            continue
        assert actions.isdisjoint(UNKEYED_ACTIONS), f"LeadingKeys cannot bound {actions & UNKEYED_ACTIONS}"
        patterns += found
    assert patterns, f"{function} reads the table without a LeadingKeys condition"

    def allowed(key: keys.Key) -> bool:
        return any(fnmatchcase(key["pk"], p) for p in patterns)

    for key in ALLOWED_KEYS[function]:
        assert allowed(key), f"{function} needs {key['pk']}"
    forbidden = [k for k in EVERY_KEY if k not in ALLOWED_KEYS[function]
                 and not (function == "ApiFunction" and k["pk"].startswith(f"WS#{WORKSPACE}"))]
    for key in forbidden:
        assert not allowed(key), f"{function} may address {key['pk']}"


@pytest.mark.parametrize("function", ["WebhooksFunction", "TrackFunction"])
def test_internet_facing_functions_only_read_the_table(stack: Stack, function: str) -> None:
    actions = {a for s in _statements(_function_role(stack, function)) for a in _listed(s["Action"])
               if a.startswith("dynamodb:")}
    assert actions == {"dynamodb:GetItem"}


def test_api_function_deletes_items_one_by_one_only_from_flow_and_template_catalogues(stack: Stack) -> None:
    # A segment's items go in BatchWriteItem, bounded by key; DeleteItem removes a flow or a template only.
    deleting = [s for s in _statements(_function_role(stack, "ApiFunction")) if "dynamodb:DeleteItem" in
                _listed(s["Action"])]
    assert len(deleting) == 1 and _listed(deleting[0]["Action"]) == ["dynamodb:DeleteItem"]
    assert _leading_keys(deleting[0]) == ["WS#*#FLOWS", "WS#*#TEMPLATES"]


def test_every_function_writes_only_its_own_log_group(stack: Stack) -> None:
    for name, function in stack.of_type("AWS::Lambda::Function").items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]
        assert stack.resources[group["Ref"]]["Type"] == "AWS::Logs::LogGroup"
        logs = [s for s in _statements(_function_role(stack, name))
                if any(a.startswith("logs:") for a in _listed(s["Action"]))]
        assert logs == [{"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                         "Resource": {"Fn::GetAtt": [group["Ref"], "Arn"]}}], name


def test_every_log_group_expires_its_lines(stack: Stack) -> None:
    # Log lines can hold personal data that an erasure cannot reach: they are kept 90 days, not forever.
    for name, group in stack.of_type("AWS::Logs::LogGroup").items():
        assert 0 < group["Properties"]["RetentionInDays"] <= 400, name


def _skips() -> Iterator[tuple[str, str, str]]:
    for name, resource in read_sam(TEMPLATE)["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            yield name, skip["id"], skip.get("comment", "")


def test_every_checkov_skip_gives_its_reason() -> None:
    skips = list(_skips())
    assert skips
    for name, check, comment in skips:
        assert check.startswith("CKV_"), name
        assert len(comment.split()) >= 6, f"{name} skips {check} without a reason"
    assert len({(n, c) for n, c, _ in skips}) == len(skips), "a check is skipped twice on one resource"


CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def checkov_report(template: Path) -> dict[str, Any]:
    answer = subprocess.run([str(CHECKOV), "--framework", "cloudformation", "-o", "json",
                             "-f", str(template)], capture_output=True, text=True, check=False, timeout=600)
    report = json.loads(answer.stdout)
    return report[0] if isinstance(report, list) else report  # type: ignore[no-any-return]


@pytest.mark.skipif(not CHECKOV.exists(), reason="`make test` installs checkov in .venv-checkov (make checkov)")
def test_checkov_finds_nothing_failed_and_every_skip_is_the_templates(tmp_path: Path) -> None:
    report = checkov_report(TEMPLATE)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]] == []
    assert summary["passed"] > 100
    skipped = {(s["resource"].split(".")[-1], s["check_id"]) for s in report["results"]["skipped_checks"]}
    assert skipped == {(n, c) for n, c, _ in _skips()}
    # The same run would fail a template that loses a fix: an SQS policy on every queue, say.
    broken = TEMPLATE.read_text().replace("                Resource: !GetAtt IngestQueue.Arn",
                                          '                Resource: "*"', 1)
    assert broken != TEMPLATE.read_text()
    (tmp_path / "template.yaml").write_text(broken)
    assert checkov_report(tmp_path / "template.yaml")["summary"]["failed"] > 0


# tests/iam.py holds every function's calls under the integration tests against its role: it must refuse.
def test_the_integration_iam_check_splits_transactions_and_refuses_keys_outside_leading_keys() -> None:
    put = {"Put": {"TableName": "t", "Item": {"pk": {"S": "WS#a#PROFILE#p"}, "sk": {"S": "PROFILE"}}}}
    check = {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "STORE#shopify#x"}, "sk": {"S": "STORE"}}}}
    found = calls("F", "us-east-1", "dynamodb", "TransactWriteItems", {"TransactItems": [put, check]})
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/t"
    assert found == [Call("F", "dynamodb:PutItem", table, ("WS#a#PROFILE#p",)),
                     Call("F", "dynamodb:ConditionCheckItem", table, ("STORE#shopify#x",))]
    statement = {"Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:ConditionCheckItem"],
                 "Resource": table, "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["WS#*"]}}}
    assert [allows(statement, c) for c in found] == [True, False]
    assert not allows({**statement, "Resource": table + "-other"}, found[0])
    assert not allows({**statement, "Action": ["dynamodb:GetItem"]}, found[0])
    [upload] = calls("F", "us-east-1", "s3", "UploadPart", {"Bucket": "b", "Key": "exports/x.csv"})
    assert allows({"Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/exports/*"}, upload)
    assert not allows({"Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/raw/*"}, upload)
