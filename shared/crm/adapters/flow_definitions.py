"""The workspace's flow definitions, messaging settings and templates in the table (keys in crm.adapters.keys).

A built-in flow or template the workspace never saved is not stored: it is listed from the defaults
(crm.flows.defaults) as a draft at version 0, and its first save is an insert like any new one. Deleting a
saved built-in therefore brings the default back. Definitions are stored as DynamoDB maps (numbers stay
Decimal, durations ISO 8601 strings), so a filter's amount never passes through a string or a float.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from pydantic import Discriminator, TypeAdapter

from crm.adapters import keys
from crm.adapters.clients import client, query_items
from crm.adapters.items import Item, from_item, wire_key
from crm.config import settings
from crm.flows.defaults import BUILTIN_SINCE, builtin_flows, builtin_templates
from crm.models.flows import FlowDefinition, FlowRecord, FlowStatus
from crm.models.messaging import EmailTemplate, MessagingSettings, SmsTemplate, TemplateRecord
from crm.ports import ConcurrentUpdate

_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)
_TEMPLATE: TypeAdapter[EmailTemplate | SmsTemplate] = TypeAdapter(
    Annotated[EmailTemplate | SmsTemplate, Discriminator("channel")])
_serializer = TypeSerializer()


def stored(value: Any) -> Any:
    """A model dump as a DynamoDB attribute: numbers as Decimal, durations and times as ISO 8601 strings."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, timedelta):
        return _DURATION.dump_python(value, mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {str(k): stored(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [stored(v) for v in value]
    return value


def _wire(values: Mapping[str, Any]) -> Item:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _refused(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _version_condition(expected_version: int | None) -> dict[str, Any]:
    # Version 0 is a built-in never saved: nothing is stored under its id yet.
    if not expected_version:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {"ConditionExpression": "#version = :expected", "ExpressionAttributeNames": {"#version": "version"},
            "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}}}


def _query(table: str, pk: str) -> Iterator[dict[str, Any]]:
    request: dict[str, Any] = {"TableName": table, "KeyConditionExpression": "pk = :pk",
                               "ExpressionAttributeValues": {":pk": {"S": pk}}, "ConsistentRead": True}
    return map(from_item, query_items(request))


def _builtin_flow(workspace_id: str, flow_id: str, definition: FlowDefinition) -> FlowRecord:
    """A built-in flow as a workspace that never saved it sees it: a draft at version 0."""
    return FlowRecord(workspace_id=workspace_id, flow_id=flow_id, status=FlowStatus.DRAFT, version=0,
                      definition=definition, created_at=BUILTIN_SINCE, updated_at=BUILTIN_SINCE)


class DynamoFlowCatalogue:
    """crm.flows.ports.FlowCatalogue: one partition per workspace (WS#{ws}#FLOWS), listed in one Query."""

    def __init__(self, table_name: str | None = None,
                 defaults: Callable[[], Mapping[str, FlowDefinition]] = builtin_flows) -> None:
        self.table = table_name or settings().table_name
        self.defaults = defaults

    def list_flows(self, workspace_id: str) -> list[FlowRecord]:
        saved = {record.flow_id: record for record in map(_flow, _query(self.table, keys.flows_pk(workspace_id)))}
        for flow_id, definition in self.defaults().items():
            saved.setdefault(flow_id, _builtin_flow(workspace_id, flow_id, definition))
        return sorted(saved.values(), key=lambda record: record.flow_id)

    def get_flow(self, workspace_id: str, flow_id: str) -> FlowRecord | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.flow(workspace_id, flow_id)),
                                            ConsistentRead=True)
        if "Item" in found:
            return _flow(from_item(found["Item"]))
        default = self.defaults().get(flow_id)
        return _builtin_flow(workspace_id, flow_id, default) if default is not None else None

    def put_flow(self, record: FlowRecord, expected_version: int | None) -> None:
        item = _wire({**keys.flow(record.workspace_id, record.flow_id), "entity": "flow",
                      "workspace_id": record.workspace_id, "flow_id": record.flow_id,
                      "status": record.status.value, "version": record.version,
                      "definition": stored(record.definition.model_dump(mode="python")),
                      "created_at": record.created_at.isoformat(), "updated_at": record.updated_at.isoformat()})
        try:
            client("dynamodb").put_item(TableName=self.table, Item=item, **_version_condition(expected_version))
        except ClientError as error:
            if _refused(error):
                raise ConcurrentUpdate(f"flow {record.flow_id} changed since it was read") from None
            raise

    def delete_flow(self, workspace_id: str, flow_id: str) -> bool:
        answer = client("dynamodb").delete_item(TableName=self.table, Key=wire_key(keys.flow(workspace_id, flow_id)),
                                                ReturnValues="ALL_OLD")
        return "Attributes" in answer


def _flow(plain: dict[str, Any]) -> FlowRecord:
    return FlowRecord.model_validate({name: plain[name] for name in FlowRecord.model_fields if name in plain})


class DynamoMessagingStore:
    """crm.flows.ports.MessagingStore: settings at WS#{ws}#MESSAGING, templates in WS#{ws}#TEMPLATES."""

    def __init__(self, table_name: str | None = None,
                 defaults: Callable[[], Mapping[str, EmailTemplate | SmsTemplate]] = builtin_templates) -> None:
        self.table = table_name or settings().table_name
        self.defaults = defaults

    def messaging_settings(self, workspace_id: str) -> MessagingSettings:
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                            Key=wire_key(keys.messaging_settings(workspace_id)))
        if "Item" not in found:
            return MessagingSettings()
        plain = from_item(found["Item"])
        return MessagingSettings.model_validate({k: v for k, v in plain.items() if k in MessagingSettings.model_fields})

    def put_messaging_settings(self, workspace_id: str, settings_: MessagingSettings) -> None:
        client("dynamodb").put_item(TableName=self.table, Item=_wire({
            **keys.messaging_settings(workspace_id), "entity": "messaging_settings",
            **stored(settings_.model_dump(mode="python"))}))

    def list_templates(self, workspace_id: str) -> Sequence[TemplateRecord]:
        saved = {r.template_id: r for r in map(_template, _query(self.table, keys.templates_pk(workspace_id)))}
        for template_id, template in self.defaults().items():
            saved.setdefault(template_id, _builtin_template(workspace_id, template_id, template))
        return sorted(saved.values(), key=lambda record: record.template_id)

    def get_template(self, workspace_id: str, template_id: str) -> TemplateRecord | None:
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                            Key=wire_key(keys.template(workspace_id, template_id)))
        if "Item" in found:
            return _template(from_item(found["Item"]))
        default = self.defaults().get(template_id)
        return _builtin_template(workspace_id, template_id, default) if default is not None else None

    def put_template(self, record: TemplateRecord) -> None:
        client("dynamodb").put_item(TableName=self.table, Item=_wire({
            **keys.template(record.workspace_id, record.template_id), "entity": "template",
            "workspace_id": record.workspace_id, "template_id": record.template_id,
            "template": stored(record.template.model_dump(mode="python")),
            "created_at": record.created_at.isoformat(), "updated_at": record.updated_at.isoformat()}))

    def delete_template(self, workspace_id: str, template_id: str) -> bool:
        answer = client("dynamodb").delete_item(TableName=self.table, ReturnValues="ALL_OLD",
                                                Key=wire_key(keys.template(workspace_id, template_id)))
        return "Attributes" in answer


def _builtin_template(workspace_id: str, template_id: str, template: EmailTemplate | SmsTemplate) -> TemplateRecord:
    return TemplateRecord(workspace_id=workspace_id, template_id=template_id, template=template,
                          created_at=BUILTIN_SINCE, updated_at=BUILTIN_SINCE)


def _template(plain: dict[str, Any]) -> TemplateRecord:
    return TemplateRecord(workspace_id=plain["workspace_id"], template_id=plain["template_id"],
                          template=_TEMPLATE.validate_python(plain["template"]), created_at=plain["created_at"],
                          updated_at=plain["updated_at"])
