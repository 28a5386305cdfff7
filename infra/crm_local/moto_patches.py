"""Changes to moto for the local runtime: transactions without copying whole tables, item operations
that are atomic across the server's threads, item and stream reads answered without moto's generic
response serializer, queries that neither sort nor compare the whole table (``index_query``), SQS receives that
do not count the whole queue per message, and EventBridge input transformers whose paths are parsed once.

moto 5.2 deep-copies every table a TransactWriteItems touches (items and stream records) so it
can roll back, which makes each transaction cost O(table size): a few hundred orders take
minutes. DynamoDB checks every condition before it writes anything, so this version does the
same (evaluate all conditions, then write) and needs no copy. Semantics for the caller are
unchanged: all writes or none, TransactionCanceledException with one reason per item.

moto 5.2 also shapes every DynamoDB answer by walking the operation's output model attribute by
attribute, which took about a third of the local stack's CPU (items and stream records are large and
frequent). For item operations and stream reads, moto's result already is the wire form (attribute
values as {"S": ...} maps), so it is sent as JSON directly, times as epoch seconds as the JSON protocol
has them; anything else that is not plain JSON (bytes, objects) takes moto's path.

moto's SQS checks each received message's retention period by building the queue's whole attribute map, which
counts the queue's messages (visible, in flight, delayed) each time: a receive cost O(queue size) per message.
Here the retention period is read from the queue. Each SendMessage builds that map too (for a FIFO attribute),
and each count asked the clock once per message: the ingest queue holds hundreds while a wave drains, so every
webhook's send walked them all, reading the clock three times a message. Here a count reads the clock once.
moto's EventBridge builds a new JSONPath parser (a yacc table)
for every path of a rule's input transformer on every event it delivers; a parsed path is kept.
moto checks an item's 400 KB limit as each attribute is set by measuring every attribute already set
(``LimitedSizeDict``): an item of n attributes cost n² measures, each walking a map's whole value. Here each
attribute's measure is kept while it holds the same value object, so a set measures the new value alone (an
attribute changed in place inside moto is counted at its size when it was set: the limit is approximate there).

moto describes a table's global secondary indexes without their ItemCount, which DynamoDB gives (refreshed about
every six hours) and the segment runs and currency jobs size their fan-out by: here it is the index's live count
(the items holding the index's key attributes).

moto's model data (``/moto-api/data.json``, what the demo and tests read sent mail and SMS from) checks that each
attribute serializes, then serializes the whole again: a schedule group's map that gained a schedule in between
(another request's thread) failed the answer with a 500. Here each attribute is copied as it was checked.

moto's server also lists its package's folders (a listdir and a stat per service) on every request to
find the service a host names; the list never changes while it runs, so it is listed once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from datetime import UTC, datetime
from typing import Any

import jsonpath_ng.ext
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from moto import backends
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import unix_time, unix_time_millis
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    ItemSizeTooLarge,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import bytesize
from moto.moto_api._internal.responses import MotoAPIResponse
from moto.sqs.models import Message, Queue, SQSBackend

_ORIGINAL = DynamoDBBackend.transact_write_items
_ORIGINAL_MODULES = backends.list_of_moto_modules
_MODULES: tuple[str, ...] = ()
_ORIGINAL_SERIALIZED = BaseResponse.serialized
_ORIGINAL_MODEL_DATA = MotoAPIResponse.model_data
# Operations whose answers are items and keys in wire form, counts, capacities and times: nothing to reshape.
_PLAIN_JSON_OPERATIONS = {
    "dynamodb": frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem",
                           "BatchWriteItem", "TransactWriteItems", "TransactGetItems"}),
    "dynamodbstreams": frozenset({"GetRecords"}),
}


def epoch_seconds(value: object) -> float:
    """The JSON protocols' timestamps: seconds since the epoch (moto keeps naive datetimes in UTC)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    raise TypeError(f"{type(value).__name__} is not plain JSON")
# moto's server answers requests on several threads, and moto writes an item in steps (an UpdateItem
# creates the bare key, then applies its clauses): a read on another thread could see the bare key.
# DynamoDB's item operations are atomic, so here every item read and write, and each transaction as a
# whole, holds one lock.
_ATOMIC = threading.RLock()
_ITEM_OPERATIONS = ("get_item", "put_item", "update_item", "delete_item", "query", "scan")
_ORIGINAL_ITEM_OPERATIONS = {name: getattr(DynamoDBBackend, name) for name in _ITEM_OPERATIONS}


def _atomic(operation: Any) -> Any:
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _ATOMIC:
            return operation(*args, **kwargs)

    return locked


_ORIGINAL_DESCRIBE_TABLE = Table.describe


def describe_table(self: Table, base_key: str = "TableDescription") -> dict[str, Any]:
    described: dict[str, Any] = _ORIGINAL_DESCRIBE_TABLE(self, base_key)
    with _ATOMIC:
        items: list[Any] = [item for held in self.items.values()
                            for item in (held.values() if self.range_key_attr else [held])]
    for index in described[base_key].get("GlobalSecondaryIndexes", []):
        keys = [key["AttributeName"] for key in index["KeySchema"]]
        index["ItemCount"] = sum(all(key in item.attrs for key in keys) for item in items)
    return described


def _key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _check(backend: DynamoDBBackend, op: dict[str, Any], key: dict[str, Any]) -> tuple[Any, ...]:
    expression = op.get("ConditionExpression")
    if expression is None:
        return (None, None, None)
    current = backend.get_item(op["TableName"], key)
    condition = get_filter_expression(expression, op.get("ExpressionAttributeNames"),
                                      op.get("ExpressionAttributeValues"))
    if condition.expr(current):
        return (None, None, None)
    old = current.to_json()["Attributes"] if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" \
        else None
    return ("ConditionalCheckFailed", ConditionalCheckFailed().message, old)


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    # Check-then-write must not interleave with another thread's writes (or reads).
    with _ATOMIC:
        _transact_write_items(self, transact_items)


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[Any, ...]] = []
    operations = []
    for item in transact_items:
        if len(item) != 1:
            raise TransactWriteSingleOpException
        (op_type, op), = item.items()
        key = _key(self, op_type, op)
        identity = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        errors.append(_check(self, op, key))
        operations.append((op_type, op, key))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    for op_type, op, key in operations:
        names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        if op_type == "Put":
            self.put_item(op["TableName"], op["Item"], expression_attribute_names=names,
                          expression_attribute_values=values)
        elif op_type == "Delete":
            self.delete_item(op["TableName"], key, expression_attribute_names=names,
                             expression_attribute_values=values)
        elif op_type == "Update":
            self.update_item(op["TableName"], key, update_expression=op["UpdateExpression"],
                             expression_attribute_names=names, expression_attribute_values=values)


def serialized(self: BaseResponse, action_result: ActionResult) -> Any:
    result = action_result.result
    if isinstance(result, dict) and self._get_action() in _PLAIN_JSON_OPERATIONS.get(self.boto3_service_name, ()):
        try:
            body = json.dumps(result, separators=(",", ":"), default=epoch_seconds)
        except TypeError:
            return _ORIGINAL_SERIALIZED(self, action_result)
        return 200, {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}, body
    return _ORIGINAL_SERIALIZED(self, action_result)


_ORIGINAL_TABLE_QUERY: Any = Table.query


def index_query(self: Table, hash_key: Any, range_comparison: Any, range_objs: Any, limit: Any,
                exclusive_start_key: Any, scan_index_forward: Any, projection_expressions: Any,
                index_name: str | None = None, *args: Any, hash_key_conditions: Any = None, **kwargs: Any) -> Any:
    """moto answers every Query by sorting every item of the table (``Table.all_items``) and comparing each with
    DynamoType's equality: over a second a query at 5,000 items, and a third of the runtime's CPU in the demo,
    where every webhook reads a profile's items by its partition key. Here only the candidates are handed to
    moto's own query, which then runs unchanged over them (its sort, paging, projection and filters): for the
    table's key, the partition's items (moto keeps them by partition); for an index, the items under the asked
    index key, compared as plain values."""
    def query() -> Any:
        return _ORIGINAL_TABLE_QUERY(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                                     scan_index_forward, projection_expressions, index_name, *args,
                                     hash_key_conditions=hash_key_conditions, **kwargs)

    if not self.range_key_attr:
        return query()
    if not index_name:
        partition = self.items.get(hash_key)  # .get: self.items is a defaultdict, a read must not add a partition
        candidates = list(partition.values()) if partition else []
    elif hash_key_conditions:
        wanted = [(name, value.type, value.value) for name, value in hash_key_conditions]
        candidates = [item for by_range in self.items.values() for item in by_range.values()
                      if all((held := item.attrs.get(name)) is not None and (held.type, held.value) == (kind, value)
                             for name, kind, value in wanted)]
    else:
        return query()
    self.__dict__["all_items"] = lambda: list(candidates)
    try:
        return query()
    finally:
        del self.__dict__["all_items"]


def is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    retention_seconds = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    return bool(retention_seconds + (message.sent_timestamp or 0) / 1000 > unix_time())


_ORIGINAL_RETENTION_CHECK = SQSBackend.is_message_valid_based_on_retention_period


# moto's Message.visible and Message.delayed, at one instant for the whole queue.
def visible_messages(self: Queue) -> list[Message]:
    now = unix_time_millis()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def messages_not_visible(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in self._messages if not now > m.visible_at)


def messages_delayed(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in self._messages if now < m.delayed_until)


_QUEUE_COUNTS = {"messages": visible_messages, "approximate_number_of_messages_not_visible": messages_not_visible,
                 "approximate_number_of_messages_delayed": messages_delayed}
_ORIGINAL_QUEUE_COUNTS = {name: getattr(Queue, name) for name in _QUEUE_COUNTS}
# A parsed JSONPath is only read when it finds (moto.events.utils imports ``parse`` at each call: this is it).
_parsed_jsonpath = functools.lru_cache(maxsize=1024)(jsonpath_parse)


_ORIGINAL_SET_ATTRIBUTE = LimitedSizeDict.__setitem__
ITEM_SIZE_LIMIT = 405000  # moto's: between DynamoDB's measured 409 and 410 KB


def _measure(value: Any) -> int:
    return int(value.size()) if type(value) is DynamoType else bytesize(str(value))


def set_attribute(self: LimitedSizeDict, key: str, value: Any) -> None:
    measures: dict[str, tuple[Any, int]] = self.__dict__.setdefault("_measures", {})
    current = 0
    for name, held in self.items():
        kept = measures.get(name)
        if kept is None or kept[0] is not held:
            kept = measures[name] = (held, _measure(held))
        current += bytesize(name) + kept[1]
    if current + bytesize(key) + _measure(value) > ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    dict.__setitem__(self, key, value)


def model_data(self: MotoAPIResponse, request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    from moto.core.model_instances import model_data as models_by_service

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for service in sorted(models_by_service):
        models = models_by_service[service]
        results[service] = {}
        for name in sorted(models):
            instances = results[service][name] = []
            for instance in list(models[name].instances_tracked):  # type: ignore[attr-defined]
                copied: dict[str, Any] = {}
                for attr in dir(instance):
                    if attr.startswith("_"):
                        continue
                    with contextlib.suppress(TypeError, AttributeError, ValueError, RuntimeError):
                        copied[attr] = json.loads(json.dumps(getattr(instance, attr)))
                instances.append(copied)
    return 200, {"Content-Type": "application/javascript"}, json.dumps(results)


def moto_modules() -> tuple[str, ...]:
    global _MODULES
    if not _MODULES:
        _MODULES = tuple(_ORIGINAL_MODULES())
    return _MODULES


def install() -> None:
    backends.list_of_moto_modules = moto_modules
    Table.query = index_query  # type: ignore[method-assign]
    Table.describe = describe_table  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    for name, count in _QUEUE_COUNTS.items():
        setattr(Queue, name, property(count))
    jsonpath_ng.ext.parse = _parsed_jsonpath  # type: ignore[attr-defined]
    LimitedSizeDict.__setitem__ = set_attribute  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    for name, operation in _ORIGINAL_ITEM_OPERATIONS.items():
        setattr(DynamoDBBackend, name, _atomic(operation))
    BaseResponse.serialized = serialized  # type: ignore[method-assign]
    MotoAPIResponse.model_data = model_data  # type: ignore[method-assign]


def uninstall() -> None:
    backends.list_of_moto_modules = _ORIGINAL_MODULES
    Table.query = _ORIGINAL_TABLE_QUERY  # type: ignore[method-assign]
    Table.describe = _ORIGINAL_DESCRIBE_TABLE  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = _ORIGINAL_RETENTION_CHECK  # type: ignore[method-assign]
    for name, original in _ORIGINAL_QUEUE_COUNTS.items():
        setattr(Queue, name, original)
    jsonpath_ng.ext.parse = jsonpath_parse  # type: ignore[attr-defined]
    LimitedSizeDict.__setitem__ = _ORIGINAL_SET_ATTRIBUTE  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _ORIGINAL  # type: ignore[method-assign]
    for name, operation in _ORIGINAL_ITEM_OPERATIONS.items():
        setattr(DynamoDBBackend, name, operation)
    BaseResponse.serialized = _ORIGINAL_SERIALIZED  # type: ignore[method-assign]
    MotoAPIResponse.model_data = _ORIGINAL_MODEL_DATA  # type: ignore[method-assign]
