"""IAM checked where moto does not: every AWS call a function's code makes under test, held against the role
template.yaml gives that function (actions, resources and dynamodb:LeadingKeys conditions).

A call is attributed to a function when a frame of the function's module (``crm_function_<LogicalId>``, as
``crm_local.lambdas.load_handler`` names it) is on the stack; calls the tests make themselves are not checked.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from types import FrameType
from typing import Any

from crm_local.provision import ACCOUNT_ID, Provisioned, Resolver
from crm_local.template import Stack

_MODULE_PREFIX = "crm_function_"
# Actions IAM authorises on no resource type, which therefore take Resource "*": SNS's opted-out list, and
# Publish to a phone number (SNS's own guide; a Deny of sns:Publish on every topic must then go with it, so
# the "*" reaches phones only: ``star_is_confined``).
WITHOUT_RESOURCE_TYPE = frozenset({"sns:Publish", "sns:CheckIfPhoneNumberIsOptedOut"})
_EVERY_TOPIC = ":sns:*:*:*"  # how a Resource names every topic (after "arn:${AWS::Partition}")
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
_S3_ACTIONS = {"ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadObject": "GetObject",
               "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject"}


@dataclass(frozen=True)
class Call:
    function: str
    action: str  # as IAM names it: "dynamodb:PutItem"
    resource: str | None  # its ARN; None when this module does not know how to build it
    leading_keys: tuple[str, ...] = ()
    s3_prefix: str | None = None  # a listing's Prefix (None: none given), for s3:prefix conditions


def calling_function(frame: FrameType | None) -> str | None:
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith(_MODULE_PREFIX):
            return str(name.removeprefix(_MODULE_PREFIX))
        frame = frame.f_back
    return None


def _pk(key: dict[str, Any]) -> str:
    return str(key["pk"]["S"])


def _table(region: str, name: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


def _query_pk(params: dict[str, Any]) -> tuple[str, ...]:
    condition = str(params.get("KeyConditionExpression", ""))
    match = re.search(r"\bpk\s*=\s*(:\w+)", condition)
    if match is None:  # a query of an index: its own key, not the table's partition key
        return ()
    return (str(params["ExpressionAttributeValues"][match.group(1)]["S"]),)


def _dynamodb(function: str, region: str, operation: str, params: dict[str, Any]) -> Iterator[Call]:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        for item in params["TransactItems"]:
            [(kind, body)] = item.items()
            key = body.get("Key") or body["Item"]
            yield Call(function, f"dynamodb:{_TRANSACT_ACTIONS[kind]}", _table(region, body["TableName"]),
                       (_pk(key),))
    elif operation in ("BatchGetItem", "BatchWriteItem"):
        for table, request in params["RequestItems"].items():
            if operation == "BatchGetItem":
                pks = tuple(_pk(k) for k in request["Keys"])
            else:
                pks = tuple(_pk(r.get("PutRequest", {}).get("Item") or r["DeleteRequest"]["Key"]) for r in request)
            yield Call(function, f"dynamodb:{operation}", _table(region, table), pks)
    else:
        resource = _table(region, params["TableName"], params.get("IndexName"))
        if "Key" in params or "Item" in params:
            pks: tuple[str, ...] = (_pk(params.get("Key") or params["Item"]),)
        elif operation == "Query":
            pks = _query_pk(params)
        else:
            pks = ()
        yield Call(function, f"dynamodb:{operation}", resource, pks)


def calls(function: str, region: str, service: str, operation: str, params: dict[str, Any]) -> list[Call]:
    """What IAM would authorise for one API call."""
    if service == "dynamodb":
        return list(_dynamodb(function, region, operation, params))
    if service == "s3":
        action = f"s3:{_S3_ACTIONS.get(operation, operation)}"
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if action == "s3:ListBucket":
            return [Call(function, action, bucket, s3_prefix=params.get("Prefix"))]
        return [Call(function, action, f"{bucket}/{params['Key']}")]
    if service == "sqs":
        name = str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
        action = "sqs:SendMessage" if operation == "SendMessageBatch" else f"sqs:{operation}"
        return [Call(function, action, f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}")]
    if service == "firehose":
        stream = f"arn:aws:firehose:{region}:{ACCOUNT_ID}:deliverystream/{params['DeliveryStreamName']}"
        return [Call(function, f"firehose:{operation}", stream)]
    if service == "sns" and operation == "Publish" and "PhoneNumber" not in params:
        topic = str(params.get("TopicArn") or params.get("TargetArn"))
        return [Call(function, "sns:Publish", topic)]
    if service == "events" and operation == "PutEvents":
        buses = {str(e.get("EventBusName", "default")) for e in params["Entries"]}
        return [Call(function, "events:PutEvents", bus if bus.startswith("arn:")
                     else f"arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/{bus}") for bus in buses]
    if service == "sesv2":  # SES v2's API authorises under IAM's "ses" prefix (ses:SendEmail, ses:GetEmailIdentity)
        return [Call(function, f"ses:{operation}", None)]
    if service == "scheduler" and operation in ("CreateSchedule", "DeleteSchedule", "GetSchedule"):
        group = params.get("GroupName", "default")
        return [Call(function, f"scheduler:{operation}",
                     f"arn:aws:scheduler:{region}:{ACCOUNT_ID}:schedule/{group}/{params['Name']}")]
    return [Call(function, f"{service}:{operation}", _user_pool(region, params) if service == "cognito-idp" else None)]


def _user_pool(region: str, params: dict[str, Any]) -> str | None:
    pool = params.get("UserPoolId")
    return f"arn:aws:cognito-idp:{region}:{ACCOUNT_ID}:userpool/{pool}" if pool else None


class Recorder:
    """Wraps botocore's one entry point for every API call; thread-safe (chalice's local server threads)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def __call__(self, original: Any) -> Any:
        recorder = self

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            function = calling_function(sys._getframe(1))
            if function is not None:
                found = calls(function, recorder.region, client.meta.service_model.service_name, operation, params)
                with recorder._lock:
                    recorder.calls.extend(found)
            return original(client, operation, params)

        return make_api_call


def star_is_confined(statement: dict[str, Any], statements: list[dict[str, Any]]) -> bool:
    """An Allow on Resource "*" is acceptable only for actions without a resource type, and sns:Publish only
    beside a Deny of it on every topic (template form, before resolution)."""
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    if not set(actions) <= WITHOUT_RESOURCE_TYPE:
        return False
    topics_denied = any(s["Effect"] == "Deny" and "sns:Publish" in json.dumps(s["Action"])
                        and _EVERY_TOPIC in json.dumps(s["Resource"])
                        for s in statements)
    return "sns:Publish" not in actions or topics_denied


def allows(statement: dict[str, Any], call: Call) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    if not any(fnmatchcase(call.action, a) for a in actions):
        return False
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    if call.resource is not None and not any(fnmatchcase(call.resource, str(r)) for r in resources):
        return False
    condition = statement.get("Condition")
    if condition is None:
        return True
    [(operator, tests)] = condition.items()
    [(key, patterns)] = tests.items()
    patterns = patterns if isinstance(patterns, list) else [patterns]
    if (operator, key) == ("StringLike", "s3:prefix"):
        return call.s3_prefix is not None and any(fnmatchcase(call.s3_prefix, p) for p in patterns)
    if (operator, key) != ("ForAllValues:StringLike", "dynamodb:LeadingKeys"):
        raise NotImplementedError(f"tests/iam.py does not evaluate {operator} {key}")
    return all(any(fnmatchcase(pk, p) for p in patterns) for pk in call.leading_keys)


class Roles:
    """Each function's statements, with every Ref / GetAtt / Sub resolved to the provisioned resources."""

    def __init__(self, stack: Stack, provisioned: Provisioned) -> None:
        resolver = Resolver(provisioned.stack_name, provisioned.region, provisioned.physical)
        self.stack_arns = tuple(arn for physical in provisioned.physical.values()
                                for arn in physical.attributes.values() if arn.startswith("arn:"))
        self.statements: dict[str, list[dict[str, Any]]] = {}
        for name, function in stack.of_type("AWS::Lambda::Function").items():
            role = stack.resources[function["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
            self.statements[name] = [s for policy in resolver.resolve(role.get("Policies", []))
                                     for s in policy["PolicyDocument"]["Statement"]]

    def of_the_stack(self, call: Call) -> bool:
        """A function's environment names only the stack's resources: a call elsewhere is a test pointing it at
        a missing bus or bucket on purpose, which IAM would refuse too (as AccessDenied, not NotFound)."""
        return call.resource is None or call.resource.startswith(self.stack_arns)

    def permits(self, call: Call) -> bool:
        """Allowed by a statement and denied by none (a Deny names resources: it never matches a call that has no
        resource, an SMS to a phone number)."""
        statements = self.statements[call.function]
        return any(allows(s, call) for s in statements if s["Effect"] == "Allow") and \
            not any(call.resource is not None and allows(s, call) for s in statements if s["Effect"] == "Deny")

    def denied(self, recorded: list[Call]) -> list[Call]:
        return sorted({c for c in recorded if self.of_the_stack(c) and not self.permits(c)}, key=repr)
