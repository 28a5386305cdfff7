"""Email on moto: SES v2 takes the raw MIME with its one-click headers; the public unsubscribe and confirm
links on the track function put a consent statement on the ingest queue, and the profiles function applies
it (consent history, timeline line) as it applies any signed statement."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_string
from email.policy import default
from typing import Any

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client
from crm.adapters import clients as crm_clients
from crm.adapters.flow_definitions import DynamoMessagingStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.secrets import LinkSigningKeys
from crm.adapters.ses import SesEmailSender
from crm.adapters.stores import DynamoStoreDirectory
from crm.messaging.compose import compose_email
from crm.messaging.defaults import ABANDONED_CHECKOUT_1, EMAIL_TEMPLATES
from crm.messaging.optin import double_opt_in_email
from crm.messaging.unsubscribe import LinkPurpose, Links, claims_for, sign
from crm.models.consent import Channel, ConsentState
from crm.models.events import CheckoutStarted, Item
from crm.models.messaging import MessagingSettings
from crm.models.profile import Profile
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm_local.lambdas import Function, load_handler
from crm_local.provision import ACCOUNT_ID, Provisioned
from moto.ses.models import ses_backends

from tests.aws import REGION, client, queue_arn, receive_all, sqs_event, stream_records
from tests.builders import NOW, compact, fixture_json, shopify_headers

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]
DOMAIN = "links-shop.myshopify.com"
SECRET = "secret"
ORIGIN = "https://shop.example"
SETTINGS = MessagingSettings(from_address="hello@shop.example", from_name="Example Shop",
                             reply_to="help@shop.example", postal_address="1 Main St, Springfield")


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    return register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY,
                          DOMAIN, SECRET, NOW, origins=[ORIGIN])


def _client(provisioned: Provisioned, function_env: UseEnv, name: str) -> Client:
    function_env(name)
    spec = provisioned.functions[name]
    return Client(load_handler(spec.code_path, spec.handler, spec.logical_id))


def _run_profiles(provisioned: Provisioned, function_env: UseEnv) -> None:
    function_env("ProfilesFunction")
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert messages
    event = sqs_event(messages, queue_arn(provisioned.outputs["IngestQueueUrl"]))
    assert Function(provisioned.functions["ProfilesFunction"]).invoke(event) == {"batchItemFailures": []}
    assert receive_all(provisioned.outputs["IngestDeadLetterQueueUrl"]) == []


def _subscribed_shopper(provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration) -> Profile:
    webhooks = _client(provisioned, function_env, "WebhooksFunction")
    at = datetime.now(UTC) - timedelta(days=1)
    customer = fixture_json("customers/update")
    customer.update(email="ada@example.com", first_name="Ada", updated_at=at.isoformat(),
                    email_marketing_consent={"state": "subscribed", "consent_updated_at": at.isoformat()})
    raw = compact(customer)
    headers = shopify_headers(raw, secret=SECRET, domain=DOMAIN, topic="customers/update", delivery_id="c-1",
                              triggered_at=at.isoformat())
    assert webhooks.http.post("/webhooks/shopify", body=raw, headers=headers).status_code == 200
    _run_profiles(provisioned, function_env)
    return _profile(provisioned, registration, "ada@example.com")


def _profile(provisioned: Provisioned, registration: StoreRegistration, email: str) -> Profile:
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    profile_id = repository.profile_id_for_identity(registration.workspace_id, f"email#{email}")
    assert profile_id is not None
    profile = repository.get_profile(registration.workspace_id, profile_id)
    assert profile is not None
    return profile


def _links(provisioned: Provisioned) -> Links:
    secret = provisioned.physical["LinkSigningSecret"].ref
    return Links(LinkSigningKeys(secret).keys(), "https://crm.example")


def test_ses_v2_sends_the_raw_message_with_its_one_click_headers_and_tags(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration,
) -> None:
    profile = _subscribed_shopper(provisioned, function_env, registration)
    client("sesv2").create_email_identity(EmailIdentity="shop.example")
    checkout = CheckoutStarted(event_id="e", workspace_id=registration.workspace_id, profile_id=profile.profile_id,
                               occurred_at=NOW, store_id=registration.store_id, checkout_id="c1", currency="USD",
                               items=(Item(title="Linen shirt", quantity=1, price="39.00"),),
                               recovery_url="https://shop.example/recover/c1", value="39.00")
    email = compose_email(EMAIL_TEMPLATES[ABANDONED_CHECKOUT_1], profile, SETTINGS, _links(provisioned), NOW,
                          checkout, tags={"flow": "builtin:abandoned_checkout", "step": "email_1",
                                          "run": "run#1"})

    requests: list[dict[str, Any]] = []
    crm_clients.client("sesv2").meta.events.register(
        "provide-client-params.sesv2.SendEmail", lambda params, **_: requests.append(dict(params)))
    message_id = SesEmailSender(configuration_set="crm-messages").send(email)

    [request] = requests
    assert request["ConfigurationSetName"] == "crm-messages"
    assert request["FromEmailAddress"] == "hello@shop.example"
    assert request["Destination"] == {"ToAddresses": ["ada@example.com"]}
    assert request["EmailTags"] == [{"Name": "flow", "Value": "builtin_abandoned_checkout"},
                                    {"Name": "run", "Value": "run_1"}, {"Name": "step", "Value": "email_1"},
                                    {"Name": "workspace", "Value": registration.workspace_id}]

    [sent] = [m for m in ses_backends[ACCOUNT_ID][REGION].sent_messages if m.id == message_id]
    parsed = message_from_string(sent.raw_data, policy=default)
    assert parsed["List-Unsubscribe"] == f"<{email.unsubscribe_url}>"
    assert email.unsubscribe_url is not None and email.unsubscribe_url.startswith("https://crm.example/unsubscribe/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["From"].addresses[0].display_name == "Example Shop"
    assert parsed["From"].addresses[0].addr_spec == "hello@shop.example"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert "https://shop.example/recover/c1" in parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert sent.source == "hello@shop.example" and "ada@example.com" in sent.destinations
    # An unverified sender is refused by SES (moto too): nothing is sent from an address the store does not own.
    with pytest.raises(ClientError, match="MessageRejected"):
        SesEmailSender(configuration_set="crm-messages").send(
            email.model_copy(update={"from_address": "x@elsewhere.example"}))


def test_a_one_click_unsubscribe_withdraws_email_consent_through_the_ingest_path(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration,
) -> None:
    profile = _subscribed_shopper(provisioned, function_env, registration)
    assert profile.consents["email"].state is ConsentState.SUBSCRIBED
    url = _links(provisioned).url(LinkPurpose.UNSUBSCRIBE, registration.workspace_id, profile.profile_id,
                                  "ada@example.com", Channel.EMAIL, registration.store_id, NOW)
    path = url.removeprefix("https://crm.example")
    track = _client(provisioned, function_env, "TrackFunction")

    page = track.http.get(path)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert b'<form method="post">' in page.body and b"ada@example.com" in page.body
    assert receive_all(provisioned.outputs["IngestQueueUrl"]) == []  # a GET (a scanner) changes nothing

    answer = track.http.post(path, body=b"List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200, answer.body
    assert b"unsubscribed" in answer.body
    _run_profiles(provisioned, function_env)

    after = _profile(provisioned, registration, "ada@example.com")
    assert after.profile_id == profile.profile_id
    assert after.consents["email"].state is ConsentState.UNSUBSCRIBED
    assert after.consents["email"].source == "unsubscribe link"
    assert after.email == "ada@example.com" and after.store_ids == profile.store_ids
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    lines = repository.timeline(registration.workspace_id, [profile.profile_id], None, 50)
    [line] = [entry for entry in lines
              if entry.type == "consent_changed" and entry.summary.get("new") == "unsubscribed"]
    assert line.summary == {"channel": "email", "old": "subscribed", "new": "unsubscribed",
                            "source": "unsubscribe link"}


@pytest.mark.parametrize(("mangle", "status"), [
    (lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"), 404),  # tampered signature
    (lambda token: "deadbeef" + token[8:], 404),  # a key id that is not ours
    (lambda token: token.replace(".", "", 1), 400),  # not three parts
])
def test_a_bad_link_is_a_clear_4xx_and_enqueues_nothing(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration,
    mangle: Callable[[str], str], status: int,
) -> None:
    keys = LinkSigningKeys(provisioned.physical["LinkSigningSecret"].ref).keys()
    token = sign(claims_for(LinkPurpose.UNSUBSCRIBE, registration.workspace_id, "p", "ada@example.com",
                            Channel.EMAIL, registration.store_id, NOW), keys)
    track = _client(provisioned, function_env, "TrackFunction")
    for method in ("GET", "POST"):
        answer = track.http.request(method, f"/unsubscribe/{mangle(token)}", body=b"")
        assert answer.status_code == status, (method, answer.body)
        assert b"This link does not work" in answer.body
    confirm_with_an_unsubscribe_token = track.http.post(f"/confirm/{token}", body=b"")
    assert confirm_with_an_unsubscribe_token.status_code == 404
    assert receive_all(provisioned.outputs["IngestQueueUrl"]) == []


def test_a_browser_subscribe_is_granted_once_the_double_opt_in_link_is_followed(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration,
) -> None:
    track = _client(provisioned, function_env, "TrackFunction")
    asked_at = datetime.now(UTC) - timedelta(minutes=5)
    body = json.dumps({"write_key": registration.write_key, "anonymous_id": "anon-9", "events": [
        {"type": "identify", "event_id": "i-1", "occurred_at": asked_at.isoformat(), "email": "bea@example.com",
         "consent": {"email": "subscribed"}}]}).encode()
    assert track.http.post("/track", body=body, headers={"Origin": ORIGIN}).status_code == 202
    _run_profiles(provisioned, function_env)
    asked = _profile(provisioned, registration, "bea@example.com")
    assert "email" not in asked.consents and "email" in asked.consent_requests

    email = double_opt_in_email(asked, SETTINGS, datetime.now(UTC), _links(provisioned))
    assert email is not None and email.unsubscribe_url is None  # not marketing: no List-Unsubscribe
    [confirm_url] = [word.split('"')[1] for word in email.html.split("href=")[1:] if "/confirm/" in word]
    path = confirm_url.removeprefix("https://crm.example")
    function_env("TrackFunction")
    assert track.http.get(path).status_code == 200
    assert track.http.post(path, body=b"").status_code == 200
    _run_profiles(provisioned, function_env)

    confirmed = _profile(provisioned, registration, "bea@example.com")
    assert confirmed.consents["email"].state is ConsentState.SUBSCRIBED
    assert confirmed.consents["email"].source == "double_opt_in"
    assert confirmed.consent_requests == {}
    assert double_opt_in_email(confirmed, SETTINGS, datetime.now(UTC), _links(provisioned)) is None


def test_links_signed_before_a_rotation_of_the_secret_still_work_after_it(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration,
) -> None:
    secret = provisioned.physical["LinkSigningSecret"].ref
    before = LinkSigningKeys(secret).keys()
    assert len(before.current) == 64 and before.previous == ()
    token = sign(claims_for(LinkPurpose.UNSUBSCRIBE, registration.workspace_id, "p", "ada@example.com",
                            Channel.EMAIL, registration.store_id, NOW), before)
    client("secretsmanager").put_secret_value(SecretId=secret, SecretString="n" * 64)

    after = LinkSigningKeys(secret).keys()
    assert (after.current, tuple(after.previous)) == (b"n" * 64, (before.current,))
    track = _client(provisioned, function_env, "TrackFunction")
    assert track.http.get(f"/unsubscribe/{token}").status_code == 200
    new_token = sign(claims_for(LinkPurpose.UNSUBSCRIBE, registration.workspace_id, "p", "ada@example.com",
                                Channel.EMAIL, registration.store_id, NOW), after)
    assert new_token.split(".")[0] != token.split(".")[0]
    assert track.http.get(f"/unsubscribe/{new_token}").status_code == 200


def test_the_flows_function_mails_the_double_opt_in_once_and_its_link_confirms(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration,
) -> None:
    """/track -> profiles -> stream -> outbox -> bus -> FlowsQueue -> FlowsFunction -> SES (moto), then the
    link in the message SES took -> /confirm -> profiles: the whole way a browser's subscribe is confirmed."""
    table = provisioned.outputs["TableName"]
    DynamoMessagingStore(table).put_messaging_settings(registration.workspace_id, SETTINGS)
    client("sesv2").create_email_identity(EmailIdentity="shop.example")
    track = _client(provisioned, function_env, "TrackFunction")
    body = json.dumps({"write_key": registration.write_key, "anonymous_id": "anon-7", "events": [
        {"type": "identify", "event_id": "i-1", "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
         "email": "cy@example.com", "consent": {"email": "subscribed"}}]}).encode()
    assert track.http.post("/track", body=body, headers={"Origin": ORIGIN}).status_code == 202
    _run_profiles(provisioned, function_env)
    function_env("OutboxFunction")
    assert Function(provisioned.functions["OutboxFunction"]).invoke({"Records": stream_records(provisioned)}) == \
        {"batchItemFailures": []}

    flows_queue = provisioned.outputs["FlowsQueueUrl"]
    messages = receive_all(flows_queue)
    assert "ConsentRequested" in [json.loads(m["Body"])["detail-type"] for m in messages]
    function_env("FlowsFunction")
    flows = Function(provisioned.functions["FlowsFunction"])
    for _ in range(2):  # the queue delivers the batch twice: one email all the same
        assert flows.invoke(sqs_event(messages, queue_arn(flows_queue))) == {"batchItemFailures": []}

    sent = [m for m in ses_backends[ACCOUNT_ID][REGION].sent_messages
            if "cy@example.com" in message_from_string(m.raw_data, policy=default)["To"]]
    [message] = sent
    parsed = message_from_string(message.raw_data, policy=default)
    assert parsed["List-Unsubscribe"] is None  # a confirmation, not marketing
    html = parsed.get_body(("html",))
    assert html is not None
    content = html.get_content()
    start = content.index("/confirm/")
    token = content[start + len("/confirm/"):content.index('"', start)]
    asked = _profile(provisioned, registration, "cy@example.com")
    timeline = DynamoProfileRepository(table).timeline(registration.workspace_id, [asked.profile_id], None, 20)
    assert [e.summary["message_id"] for e in timeline if e.type == "double_opt_in_sent"] == [message.id]

    function_env("TrackFunction")
    assert track.http.post(f"/confirm/{token}", body=b"").status_code == 200
    _run_profiles(provisioned, function_env)
    confirmed = _profile(provisioned, registration, "cy@example.com")
    assert (confirmed.consents["email"].state, confirmed.consents["email"].source) == \
        (ConsentState.SUBSCRIBED, "double_opt_in")
