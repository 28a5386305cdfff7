"""`crm import` against the stack provisioned from template.yaml (moto): Shopify's exports archived
as-is, applied through crm.ingestion, found again through the repository; a second import changes nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm_local.cli import main
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import NOW, SECRET

pytestmark = pytest.mark.integration

IMPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
DOMAIN = "northwind.myshopify.com"

# Hand-checked from tests/fixtures/imports/orders_export.csv: net of refunds, cancelled orders count nothing.
EXPECTED = {
    "email#ann.lee@example.com": (1, Decimal("143.02")),
    "email#bob@example.com": (2, Decimal("30.00")),
    "email#cy@example.com": (1, Decimal("60.00")),
    "email#eve@example.com": (1, Decimal("97.20")),
    "email#frank@example.com": (1, Decimal("42.00")),
    "email#grace@example.com": (1, Decimal("19.99")),
    "phone#+442079460018": (1, Decimal("55.50")),
}


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    return register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, SECRET,
                          NOW)


def _crm_import(provisioned: Provisioned, capsys: pytest.CaptureFixture[str],
                *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["--stack", provisioned.stack_name, "import", "--platform", "shopify", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out else {})


def _totals(provisioned: Provisioned, workspace_id: str) -> dict[str, tuple[int, Decimal]]:
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    found = {}
    for identity in [*EXPECTED, "email#dan@example.com"]:
        profile_id = repository.profile_id_for_identity(workspace_id, identity)
        assert profile_id is not None, identity
        profile = repository.get_profile(workspace_id, profile_id)
        assert profile is not None
        found[identity] = (profile.orders_count, profile.total_spent)
    return found


def test_import_orders_and_customers_then_again_changes_nothing(
    provisioned: Provisioned, registration: StoreRegistration, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = str(IMPORTS / "orders_export.csv")
    code, report = _crm_import(provisioned, capsys, "--store", DOMAIN.upper(), "--orders", orders)
    assert code == 0
    assert (report["orders_found"], report["applied"], report["unchanged"], report["duplicates"]) == (9, 9, 0, 1)
    assert report["skipped_total"] == 2

    totals = _totals(provisioned, registration.workspace_id)
    assert {k: v for k, v in totals.items() if k in EXPECTED} == EXPECTED
    assert totals["email#dan@example.com"][1] == Decimal("0.00")  # the cancelled order

    code, customers = _crm_import(provisioned, capsys, "--store", DOMAIN, "--customers",
                                  str(IMPORTS / "customers_export.csv"))
    assert (code, customers["customers_found"]) == (0, 5)

    code, again = _crm_import(provisioned, capsys, "--store", DOMAIN, "--orders", orders)
    assert (code, again["applied"], again["unchanged"]) == (0, 0, 9)
    assert _totals(provisioned, registration.workspace_id) == totals

    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=provisioned.outputs["ArchiveBucketName"],
                                                            Prefix="imports/")["Contents"]]
    assert len(keys) == 3 and all(k.startswith(f"imports/{registration.store_id}/") for k in keys)
    archived = client("s3").get_object(Bucket=provisioned.outputs["ArchiveBucketName"], Key=report["archive_key"])
    assert archived["Body"].read() == (IMPORTS / "orders_export.csv").read_bytes()


def test_dry_run_writes_nothing(provisioned: Provisioned, registration: StoreRegistration,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _crm_import(provisioned, capsys, "--store", DOMAIN, "--orders",
                               str(IMPORTS / "orders_export.csv"), "--dry-run")
    assert (code, report["dry_run"], report["orders_found"], report["applied"]) == (0, True, 9, 0)
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    assert repository.profile_id_for_identity(registration.workspace_id, "email#bob@example.com") is None
    listed = client("s3").list_objects_v2(Bucket=provisioned.outputs["ArchiveBucketName"], Prefix="imports/")
    assert listed.get("KeyCount", 0) == 0


def test_unknown_store_exits_2(provisioned: Provisioned, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--stack", provisioned.stack_name, "import", "--platform", "shopify", "--store",
                 "nobody.myshopify.com", "--orders", str(IMPORTS / "orders_export.csv")])
    assert code == 2
    assert "no shopify store 'nobody.myshopify.com' is registered" in capsys.readouterr().err
