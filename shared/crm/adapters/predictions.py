"""A workspace's prediction settings and last fit in the table, and each profile's prediction on its item."""

from __future__ import annotations

from botocore.exceptions import ClientError

from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.items import from_item, plain, serializer, to_item, wire_key
from crm.config import settings
from crm.models.predictions import Prediction, PredictionSettings, WorkspaceFit
from crm.models.profile import Profile
from crm.ports import ConcurrentUpdate


class DynamoPredictionStore:
    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def settings(self, workspace_id: str) -> PredictionSettings | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.prediction_settings(workspace_id)))
        return PredictionSettings.model_validate(from_item(found["Item"])) if "Item" in found else None

    def put_settings(self, workspace_id: str, chosen: PredictionSettings) -> None:
        client("dynamodb").put_item(TableName=self.table, Item=to_item(
            keys.prediction_settings(workspace_id), "prediction_settings", chosen, workspace_id=workspace_id))

    def fit(self, workspace_id: str) -> WorkspaceFit | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.prediction_fit(workspace_id)))
        return WorkspaceFit.model_validate_json(found["Item"]["fit"]["S"]) if "Item" in found else None

    def put_fit(self, fit: WorkspaceFit) -> None:
        # As JSON: the models' parameters are floats, which DynamoDB's number type would take only as Decimals
        # (and give back as Decimals); the fit is read whole, never queried by a field.
        client("dynamodb").put_item(TableName=self.table, Item={
            **wire_key(keys.prediction_fit(fit.workspace_id)), "entity": {"S": "prediction_fit"},
            "fit": {"S": fit.model_dump_json()}})

    def write_prediction(self, profile: Profile, prediction: Prediction) -> None:
        # One attribute and the revision, not the whole profile: the revision moves so that a writer that
        # read the profile before keeps nothing stale (its guarded put fails and it reads again).
        value = plain(prediction.model_dump(mode="python"))
        try:
            client("dynamodb").update_item(
                TableName=self.table, Key=wire_key(keys.profile(profile.workspace_id, profile.profile_id)),
                UpdateExpression="SET prediction = :prediction, revision = :next",
                ConditionExpression="revision = :held",
                ExpressionAttributeValues={":prediction": serializer.serialize(value),
                                           ":next": {"N": str(profile.revision + 1)},
                                           ":held": {"N": str(profile.revision)}})
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(f"profile {profile.profile_id} changed meanwhile") from None
            raise
