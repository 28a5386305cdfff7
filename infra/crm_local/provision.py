"""Create every resource of the translated template in the AWS that boto3 points at (moto locally).

Resources are created with direct API calls, resolving Ref / Fn::GetAtt / Fn::Sub / Fn::Join / Fn::If
ourselves (parameters at their defaults unless given, as ``sam deploy --parameter-overrides`` gives them):
moto's CloudFormation cannot create SAM's API Gateway resources nor a rule on a `!Ref` bus. Only the Lambda
service is emulated (by the runtime); IAM, API Gateway and Lambda resources get placeholder names, since
chalice's local server and the pollers stand in for them.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from crm_local.template import Stack

ACCOUNT_ID = "123456789012"
# What ``!Ref AWS::NoValue`` resolves to: the property (or list entry) holding it is left out, as CloudFormation does.
NO_VALUE = object()


@dataclass
class Physical:
    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function as the runtime needs it: where its code is, its handler, its environment."""

    logical_id: str
    handler: str
    code_path: str
    environment: dict[str, str]
    timeout: int


@dataclass
class Provisioned:
    stack_name: str
    region: str
    physical: dict[str, Physical]
    outputs: dict[str, str]
    functions: dict[str, FunctionSpec]
    event_source_mappings: dict[str, dict[str, Any]]
    routes: list[tuple[str, str, str]]  # (method, path, function logical id)
    schedules: dict[str, tuple[str, str, str]]  # rule logical id -> (expression, rule ARN, function logical id)
    # configuration set name -> its event destinations as the template gives them (moto keeps one, and no
    # EventBridge one: whatever emulates SES's events reads them here)
    ses_event_destinations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # CloudWatch Logs subscription filters, resolved (LogGroupName, FilterPattern, DestinationArn, FilterName):
    # moto cannot invoke the runtime's functions; crm_local.sms_status delivers what SNS logs to them
    log_subscriptions: list[dict[str, Any]] = field(default_factory=list)


class Resolver:
    def __init__(self, stack_name: str, region: str, physical: dict[str, Physical]) -> None:
        self.pseudo = {"AWS::StackName": stack_name, "AWS::Region": region, "AWS::AccountId": ACCOUNT_ID,
                       "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": ""}
        self.physical = physical
        self.condition: Callable[[str], bool] = lambda name: True

    def ref(self, name: str) -> str:
        return self.pseudo[name] if name in self.pseudo else self.physical[name].ref

    def attribute(self, name: str, attribute: str) -> str:
        try:
            return self.physical[name].attributes[attribute]
        except KeyError:
            raise KeyError(f"Fn::GetAtt {name}.{attribute} is not known to the local runtime") from None

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return NO_VALUE if argument == "AWS::NoValue" else self.ref(argument)
            if key == "Fn::If":
                name, chosen, otherwise = argument
                return self.resolve(chosen if self.condition(name) else otherwise)
            if key == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attribute(name, attribute)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                return str(argument[0]).join(str(self.resolve(v)) for v in argument[1])
            if key.startswith("Fn::"):
                raise ValueError(f"{key} is not supported by the local runtime")
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not NO_VALUE}

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {k: self.resolve(v) for k, v in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                return self.attribute(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", substitute, text)


def dependencies(value: Any) -> set[str]:
    """The logical ids a property value refers to."""
    if isinstance(value, list):
        return set().union(*(dependencies(v) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, argument in value.items():
        if key == "Ref" and isinstance(argument, str) and not argument.startswith("AWS::"):
            found.add(argument)
        elif key == "Fn::GetAtt":
            found.add(argument[0] if isinstance(argument, list) else argument.split(".")[0])
        elif key == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            found |= {n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text) if not n.startswith("AWS::")}
            if isinstance(argument, list):
                found |= dependencies(argument[1])
                found -= set(argument[1])
        else:
            found |= dependencies(argument)
    return found


def _sqs_attributes(properties: dict[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for name, value in properties.items():
        if name in ("QueueName", "Tags"):
            continue
        if isinstance(value, dict):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        attributes[name] = str(value)
    return attributes


_PASSWORD_OPTIONS = ("PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation", "ExcludeUppercase",
                     "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType")


def generated_secret(secrets: Any, generate: dict[str, Any]) -> str:
    """A secret as CloudFormation generates it: a random password (Secrets Manager's GetRandomPassword, with the
    same options), alone or as the ``GenerateStringKey`` of the ``SecretStringTemplate`` JSON object."""
    options = {k: v for k, v in generate.items() if k in _PASSWORD_OPTIONS}
    password = str(secrets.get_random_password(**options)["RandomPassword"])
    if "SecretStringTemplate" not in generate:
        return password
    document = json.loads(generate["SecretStringTemplate"])
    document[generate["GenerateStringKey"]] = password
    return json.dumps(document)


_DYNAMIC = re.compile(r"\{\{resolve:secretsmanager:([^}]+)\}\}")


def dynamic_references(value: Any, secrets: Any) -> Any:
    """``{{resolve:secretsmanager:SECRET:SecretString[:JSON_KEY]}}`` replaced by the secret (as CloudFormation
    does when it deploys), in every string of a resolved property value."""
    if isinstance(value, list):
        return [dynamic_references(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: dynamic_references(v, secrets) for k, v in value.items()}
    if not isinstance(value, str) or "{{resolve:" not in value:
        return value

    def secret(match: re.Match[str]) -> str:
        parts = match.group(1).split(":")
        cut = 7 if parts[0] == "arn" else 1  # an ARN has colons of its own
        secret_id, rest = ":".join(parts[:cut]), parts[cut:]
        text = str(secrets.get_secret_value(SecretId=secret_id)["SecretString"])
        json_key = rest[1] if len(rest) > 1 and rest[1] else None
        return str(json.loads(text)[json_key]) if json_key else text

    return _DYNAMIC.sub(secret, value)


def _throughput(given: Mapping[str, Any]) -> dict[str, int]:
    """Capacity units as DynamoDB takes them (a template's parameters resolve to text)."""
    return {name: int(units) for name, units in given.items()}


class Provisioner:
    def __init__(self, stack: Stack, stack_name: str, region: str,
                 parameters: Mapping[str, str] | None = None) -> None:
        self.stack = stack
        self.stack_name = stack_name
        self.region = region
        unknown = set(parameters or {}) - stack.parameters.keys()
        if unknown:
            raise ValueError(f"the template has no parameter {', '.join(sorted(unknown))}")
        # Every parameter at its default but those given (sam deploy's --parameter-overrides).
        self.parameters = {name: str(p.get("Default", "")) for name, p in stack.parameters.items()}
        self.parameters.update(parameters or {})
        self.physical: dict[str, Physical] = {}
        self.resolver = Resolver(stack_name, region, self.physical)
        self.resolver.pseudo.update(self.parameters)
        self.resolver.condition = self.condition
        self.creators: dict[str, Callable[[str, dict[str, Any]], Physical]] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::S3::Bucket": self._bucket,
            "AWS::SQS::Queue": self._queue,
            "AWS::SQS::QueuePolicy": self._queue_policy,
            "AWS::Events::EventBus": self._bus,
            "AWS::Events::Rule": self._rule,
            "AWS::KinesisFirehose::DeliveryStream": self._delivery_stream,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::SNS::TopicPolicy": self._topic_policy,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::Scheduler::ScheduleGroup": self._schedule_group,
            "AWS::Scheduler::Schedule": self._schedule,
            "AWS::SES::ConfigurationSet": self._configuration_set,
            "AWS::SES::ConfigurationSetEventDestination": self._event_destination,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::Logs::SubscriptionFilter": self._subscription_filter,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::Cognito::UserPool": self._user_pool,
            "AWS::Cognito::UserPoolClient": self._user_pool_client,
            "AWS::ApplicationAutoScaling::ScalableTarget": self._scalable_target,
            "AWS::ApplicationAutoScaling::ScalingPolicy": self._scaling_policy,
        }
        self.ses_event_destinations: dict[str, list[dict[str, Any]]] = {}
        self.log_subscriptions: list[dict[str, Any]] = []

    def _client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)  # type: ignore[call-overload]

    def _default_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{resource}"

    def _table(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("TableName") or self._default_name(logical_id)
        request: dict[str, Any] = {
            "TableName": name, "KeySchema": p["KeySchema"], "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = _throughput(p["ProvisionedThroughput"])
        for optional in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if optional in p:
                request[optional] = [{**index, "ProvisionedThroughput": _throughput(index["ProvisionedThroughput"])}
                                     if "ProvisionedThroughput" in index else index for index in p[optional]]
        if "StreamSpecification" in p:
            request["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
        dynamodb = self._client("dynamodb")
        table = dynamodb.create_table(**request)["TableDescription"]
        if p.get("TimeToLiveSpecification", {}).get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=p["TimeToLiveSpecification"])
        attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            attributes["StreamArn"] = table["LatestStreamArn"]
        return Physical(name, attributes)

    def _scalable_target(self, logical_id: str, p: dict[str, Any]) -> Physical:
        """Registered as CloudFormation would (moto keeps it; nothing scales locally): its Ref is the target's id."""
        target = {"ServiceNamespace": p["ServiceNamespace"], "ResourceId": p["ResourceId"],
                  "ScalableDimension": p["ScalableDimension"]}
        self._client("application-autoscaling").register_scalable_target(
            **target, MinCapacity=int(p["MinCapacity"]), MaxCapacity=int(p["MaxCapacity"]))
        return Physical("|".join((p["ResourceId"], p["ScalableDimension"], p["ServiceNamespace"])),
                        {"Target": json.dumps(target)})

    def _scaling_policy(self, logical_id: str, p: dict[str, Any]) -> Physical:
        [target] = [found for found in self.physical.values() if found.ref == p["ScalingTargetId"]]
        configuration = p["TargetTrackingScalingPolicyConfiguration"]
        arn = self._client("application-autoscaling").put_scaling_policy(
            PolicyName=p["PolicyName"], PolicyType=p["PolicyType"], **json.loads(target.attributes["Target"]),
            TargetTrackingScalingPolicyConfiguration={**configuration,
                                                      "TargetValue": float(configuration["TargetValue"])},
        )["PolicyARN"]
        return Physical(arn, {"Arn": arn})

    def _bucket(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("BucketName") or self._default_name(logical_id).lower()
        s3 = self._client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        return Physical(name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"})

    def _queue(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("QueueName") or self._default_name(logical_id)
        url = self._client("sqs").create_queue(QueueName=name, Attributes=_sqs_attributes(p))["QueueUrl"]
        return Physical(url, {"Arn": self._arn("sqs", name), "QueueName": name, "QueueUrl": url})

    def _queue_policy(self, logical_id: str, p: dict[str, Any]) -> Physical:
        policy = json.dumps(p["PolicyDocument"])
        for url in p["Queues"]:
            self._client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
        return Physical(self._default_name(logical_id), {})

    def _bus(self, logical_id: str, p: dict[str, Any]) -> Physical:
        arn = self._client("events").create_event_bus(Name=p["Name"])["EventBusArn"]
        return Physical(p["Name"], {"Arn": arn, "Name": p["Name"]})

    def _rule(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("Name") or self._default_name(logical_id)
        request = {"Name": name, "State": p.get("State", "ENABLED"), "EventBusName": p.get("EventBusName", "default")}
        if "EventPattern" in p:
            request["EventPattern"] = json.dumps(p["EventPattern"])
        if "ScheduleExpression" in p:
            request["ScheduleExpression"] = p["ScheduleExpression"]
        events = self._client("events")
        arn = events.put_rule(**request)["RuleArn"]
        targets = [t for t in p.get("Targets", []) if ":lambda:" not in str(t.get("Arn"))]
        if targets:
            events.put_targets(Rule=name, EventBusName=request["EventBusName"], Targets=targets)
        return Physical(name, {"Arn": arn})

    def _delivery_stream(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("DeliveryStreamName") or self._default_name(logical_id)
        request = {k: v for k, v in p.items() if k not in ("DeliveryStreamEncryptionConfigurationInput", "Tags")}
        arn = self._client("firehose").create_delivery_stream(**{**request, "DeliveryStreamName": name})
        return Physical(name, {"Arn": arn["DeliveryStreamARN"]})

    def _topic(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("TopicName") or self._default_name(logical_id)
        arn = self._client("sns").create_topic(Name=name)["TopicArn"]
        return Physical(arn, {"TopicArn": arn, "TopicName": name})

    def _subscription(self, logical_id: str, p: dict[str, Any]) -> Physical:
        attributes = {name: json.dumps(value) if isinstance(value, dict) else str(value).lower()
                      if isinstance(value, bool) else str(value)
                      for name, value in p.items()
                      if name in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy",
                                  "DeliveryPolicy")}
        arn = self._client("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"],
                                            Attributes=attributes, ReturnSubscriptionArn=True)["SubscriptionArn"]
        return Physical(arn, {"Arn": arn})

    def _topic_policy(self, logical_id: str, p: dict[str, Any]) -> Physical:
        for topic in p["Topics"]:
            self._client("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy",
                                                     AttributeValue=json.dumps(p["PolicyDocument"]))
        return Physical(self._default_name(logical_id))

    def _schedule_group(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("Name") or self._default_name(logical_id)
        arn = self._client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
        return Physical(name, {"Arn": arn})

    def _schedule(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("Name") or self._default_name(logical_id)
        arn = self._client("scheduler").create_schedule(**{**p, "Name": name})["ScheduleArn"]
        return Physical(arn, {"Arn": arn})

    def _configuration_set(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("Name") or self._default_name(logical_id)
        self._client("sesv2").create_configuration_set(ConfigurationSetName=name)
        return Physical(name)

    def _event_destination(self, logical_id: str, p: dict[str, Any]) -> Physical:
        """moto keeps one destination per configuration set and has no SES v2 API for them: the template's
        are kept in ``ses_event_destinations``, and an SNS one is also given to moto (it publishes to it)."""
        configuration_set, destination = p["ConfigurationSetName"], p["EventDestination"]
        name = destination.get("Name") or self._default_name(logical_id)
        self.ses_event_destinations.setdefault(configuration_set, []).append({**destination, "Name": name})
        topic = destination.get("SnsDestination", {}).get("TopicARN")
        if topic:
            self._client("ses").create_configuration_set_event_destination(
                ConfigurationSetName=configuration_set, EventDestination={
                    "Name": name, "Enabled": destination.get("Enabled", True),
                    "MatchingEventTypes": [t[0].lower() + t[1:] for t in destination["MatchingEventTypes"]],
                    "SNSDestination": {"TopicARN": topic}})
        return Physical(name)

    def _user_pool(self, logical_id: str, p: dict[str, Any]) -> Physical:
        """The pool with the template's username, sign-up, password and attribute settings (moto's cognito-idp
        keeps them; AccountRecoverySetting and the like are no concern of a local stack)."""
        kept = ("UsernameAttributes", "AdminCreateUserConfig", "Policies", "Schema")
        name = p.get("UserPoolName") or self._default_name(logical_id)
        pool = self._client("cognito-idp").create_user_pool(PoolName=name, **{k: p[k] for k in kept if k in p})
        return Physical(pool["UserPool"]["Id"], {"Arn": pool["UserPool"]["Arn"],
                                                 "ProviderName": f"cognito-idp.{self.region}.amazonaws.com/{name}"})

    def _user_pool_client(self, logical_id: str, p: dict[str, Any]) -> Physical:
        kept = ("GenerateSecret", "ExplicitAuthFlows", "PreventUserExistenceErrors", "ReadAttributes",
                "WriteAttributes")
        answer = self._client("cognito-idp").create_user_pool_client(
            UserPoolId=p["UserPoolId"], ClientName=p.get("ClientName") or self._default_name(logical_id),
            **{k: p[k] for k in kept if k in p})
        return Physical(answer["UserPoolClient"]["ClientId"])

    def _log_group(self, logical_id: str, p: dict[str, Any]) -> Physical:
        """Created, so that its Ref is its name (SNS's SMS status groups are named by SNS: a subscription finds
        them by that name)."""
        name = p.get("LogGroupName") or self._default_name(logical_id)
        self._client("logs").create_log_group(logGroupName=name)
        return Physical(name, {"Arn": self._arn("logs", f"log-group:{name}:*")})

    def _subscription_filter(self, logical_id: str, p: dict[str, Any]) -> Physical:
        """Kept, not given to moto (its Logs would invoke a Lambda service the runtime stands in for)."""
        name = p.get("FilterName") or self._default_name(logical_id)
        self.log_subscriptions.append({"FilterPattern": "", **p, "FilterName": name})
        return Physical(name)

    def _secret(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("Name") or self._default_name(logical_id)
        secrets = self._client("secretsmanager")
        value = p.get("SecretString")
        if value is None and "GenerateSecretString" in p:
            value = generated_secret(secrets, p["GenerateSecretString"])
        request = {"Name": name, "SecretString": value or ""}
        if p.get("Description"):
            request["Description"] = p["Description"]
        arn = secrets.create_secret(**request)["ARN"]
        return Physical(arn, {"Id": arn})

    def _alarm(self, logical_id: str, p: dict[str, Any]) -> Physical:
        name = p.get("AlarmName") or self._default_name(logical_id)
        self._client("cloudwatch").put_metric_alarm(**{**p, "AlarmName": name})
        return Physical(name, {"Arn": self._arn("cloudwatch", f"alarm:{name}")})

    def _placeholder(self, logical_id: str, resource: dict[str, Any]) -> Physical:
        name = self._default_name(logical_id)
        kind = resource["Type"].split("::")[1].lower()
        return Physical(name, {"Arn": self._arn(kind, f"function:{name}" if kind == "lambda" else name)})

    def condition(self, name: str | None) -> bool:
        """A template condition, with the parameters as given (else at their defaults)."""
        if name is None:
            return True
        return self._holds(self.stack.conditions[name])

    def _holds(self, expression: Any) -> bool:
        (function, argument), = expression.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (self.resolver.resolve(a) for a in argument)
            return bool(str(left) == str(right))
        if function == "Fn::Not":
            return not self._holds(argument[0])
        if function == "Fn::And":
            return all(self._holds(a) for a in argument)
        if function == "Fn::Or":
            return any(self._holds(a) for a in argument)
        raise ValueError(f"condition function {function} is not supported by the local runtime")

    def create_all(self) -> None:
        resources = {n: r for n, r in self.stack.resources.items() if self.condition(r.get("Condition"))}
        for logical_id, resource in resources.items():
            if resource["Type"] not in self.creators:
                self.physical[logical_id] = self._placeholder(logical_id, resource)
        pending = {n: dependencies(r.get("Properties", {})) - self.stack.parameters.keys()
                   for n, r in resources.items() if n not in self.physical}
        while pending:
            ready = [n for n, needs in pending.items() if needs <= self.physical.keys()]
            if not ready:
                raise ValueError(f"circular or unknown references among {sorted(pending)}")
            for logical_id in sorted(ready):
                resource = resources[logical_id]
                properties = self._resolved(resource.get("Properties", {}))
                self.physical[logical_id] = self.creators[resource["Type"]](logical_id, properties)
                del pending[logical_id]

    def _resolved(self, value: Any) -> Any:
        return dynamic_references(self.resolver.resolve(value), self._client("secretsmanager"))

    def functions(self) -> dict[str, FunctionSpec]:
        specs = {}
        for logical_id, resource in self.stack.of_type("AWS::Lambda::Function").items():
            p = resource["Properties"]
            variables = self._resolved(p.get("Environment", {}).get("Variables", {}))
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id, handler=p["Handler"], code_path=str(self.stack.code_paths[logical_id]),
                environment={k: str(v) for k, v in variables.items()}, timeout=int(p.get("Timeout", 3)),
            )
        return specs

    def event_source_mappings(self) -> dict[str, dict[str, Any]]:
        mappings = {}
        for logical_id, resource in self.stack.of_type("AWS::Lambda::EventSourceMapping").items():
            properties = dict(resource["Properties"])
            function = properties.pop("FunctionName")["Ref"]
            mappings[logical_id] = {**self.resolver.resolve(properties), "Function": function}
        return mappings

    def schedules(self) -> dict[str, tuple[str, str, str]]:
        """Every scheduled rule that targets one of the template's functions (EventBridge would invoke it)."""
        found = {}
        for logical_id, resource in self.stack.of_type("AWS::Events::Rule").items():
            expression = resource["Properties"].get("ScheduleExpression")
            for target in resource["Properties"].get("Targets", []):
                arn = target.get("Arn")
                if expression and isinstance(arn, dict) and "Fn::GetAtt" in arn:
                    found[logical_id] = (str(expression), str(self.physical[logical_id].attributes["Arn"]),
                                         str(arn["Fn::GetAtt"][0]))
        return found

    def routes(self) -> list[tuple[str, str, str]]:
        """(method, path, function) for every API route, read from the translated API definitions: the HTTP
        APIs' first, and a route both API types carry (kept on the REST API for older clients) once, since
        the local server answers every API on one address."""
        found: list[tuple[str, str, str]] = []
        for api_type in ("AWS::ApiGatewayV2::Api", "AWS::ApiGateway::RestApi"):
            for resource in self.stack.of_type(api_type).values():
                for path, methods in resource["Properties"].get("Body", {}).get("paths", {}).items():
                    for method, operation in methods.items():
                        uri = json.dumps(operation.get("x-amazon-apigateway-integration", {}).get("uri"))
                        function = re.search(r"\$\{(\w+)\.Arn\}", uri)
                        if function and (method.upper(), path, function.group(1)) not in found:
                            found.append((method.upper(), path, function.group(1)))
        return found

    def register_outputs(self) -> dict[str, str]:
        """Resolve the template's Outputs and record them as a CloudFormation stack, as `sam deploy` would,
        so `crm` commands find the stack's resources the same way locally and in AWS."""
        outputs = {name: str(self.resolver.resolve(o["Value"])) for name, o in self.stack.outputs.items()}
        template = {
            "Resources": {"LocalRuntime": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
        with warnings.catch_warnings():  # moto creates no resource for the handle, which is all we need
            warnings.simplefilter("ignore", UserWarning)
            self._client("cloudformation").create_stack(StackName=self.stack_name, TemplateBody=json.dumps(template))
        return outputs


# Where the local runtime departs from the template's defaults. moto never throttles, so a provisioned table's
# pacing (the daily segment run chained at the tasks' pace, docs/scale.md) would only make local runs wait:
# locally the table is on demand unless `crm local --parameter-overrides TableCapacity=provisioned` asks.
LOCAL_PARAMETERS = {"TableCapacity": "on-demand"}


def provision(stack: Stack, stack_name: str = "crm", region: str = "us-east-1",
              parameters: Mapping[str, str] | None = None) -> Provisioned:
    """The stack created as the local runtime, its tests and the benches run it (LOCAL_PARAMETERS unless given)."""
    given = {**{name: value for name, value in LOCAL_PARAMETERS.items() if name in stack.parameters},
             **(parameters or {})}
    provisioner = Provisioner(stack, stack_name, region, given)
    provisioner.create_all()
    return Provisioned(
        stack_name=stack_name, region=region, physical=provisioner.physical,
        outputs=provisioner.register_outputs(), functions=provisioner.functions(),
        event_source_mappings=provisioner.event_source_mappings(), routes=provisioner.routes(),
        schedules=provisioner.schedules(), ses_event_destinations=provisioner.ses_event_destinations,
        log_subscriptions=provisioner.log_subscriptions,
    )
