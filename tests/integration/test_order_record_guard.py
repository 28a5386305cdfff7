"""The order record's guard across an upgrade: records written before the record kept its state (an attribute
``state``, what the record says: version, refunds, removal) are guarded by their version once, and carry the
state from their next write on (crm.adapters.profiles, ``_order_put``)."""

from __future__ import annotations

import pytest
from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.items import Item, to_packed_item, wire_key
from crm.adapters.profiles import DynamoProfileRepository
from crm.changes import reads_for
from crm.ingestion import apply_event
from crm.models.profile import OrderRecord
from crm.ports import ConcurrentUpdate
from crm.unwritten_orders import order_state
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.contract.test_repository_contract import WS, _plan, _refund

pytestmark = pytest.mark.integration


class BeforeTheState(DynamoProfileRepository):
    """Order records as the adapter wrote them before: the version its only guarded attribute."""

    def _order_item(self, workspace_id: str, record: OrderRecord) -> Item:
        return to_packed_item(keys.order(workspace_id, record.store_id, record.order_id), "order", record,
                              version=record.version)


def _stored(table: str) -> Item:
    found: Item = client("dynamodb").get_item(TableName=table, Key=wire_key(keys.order(WS, "st_a", "1")))["Item"]
    return found


def test_a_record_written_before_the_state_is_guarded_by_its_version_and_keeps_the_state_after(
        provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    assert apply_event(BeforeTheState(table), _refund("r-1", "1.00"), NOW)
    assert "state" not in _stored(table)

    repository = DynamoProfileRepository(table)
    second, third = _plan(repository, _refund("r-2", "2.00")), _plan(repository, _refund("r-3", "2.00"))
    repository.commit(second)
    with pytest.raises(ConcurrentUpdate):
        repository.commit(third)

    assert apply_event(repository, _refund("r-3", "2.00"), NOW)
    held = repository.load(reads_for(_refund("r-3", "2.00"))).order
    assert held is not None and sorted(held.refunds) == ["r-1", "r-2", "r-3"]
    assert _stored(table)["state"] == {"S": order_state(held)}
