"""The six flows every workspace gets, as drafts it may edit and turn live (docs/flows.md, "Built-in flows").

Each sends the built-in template of the same name (crm.messaging.defaults) until the workspace saves its
own under that id. The thank-you and the first welcome email answer something the shopper just did, so
Smart Sending does not hold them back; every other message respects it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from crm.models.flows import (
    DateAnchor,
    Delay,
    EventTrigger,
    ExitEvent,
    FilterOp,
    FlowDefinition,
    FlowRecord,
    FlowStatus,
    PropertyFilter,
    Reentry,
    SegmentTrigger,
    SendEmail,
    WaitForEvent,
)

ABANDONED_CHECKOUT = "builtin:abandoned_checkout"
BROWSE_ABANDONMENT = "builtin:browse_abandonment"
WELCOME = "builtin:welcome"
POST_PURCHASE = "builtin:post_purchase"
WIN_BACK = "builtin:win_back"
VIP = "builtin:vip"
# crm.segments.builtin's ids
CHURN_RISK_SEGMENT = "builtin:churn_risk"
VIP_SEGMENT = "builtin:vip"

HAS_EMAIL = {"field": "email_domain", "op": "exists"}
_ORDER_PLACED = ExitEvent(event="OrderPlaced")


def _abandoned_checkout() -> FlowDefinition:
    return FlowDefinition(
        name="Abandoned checkout",
        description="A shopper with an email started a checkout and did not order: a reminder with the cart "
                    "and its recovery link 4 hours later, another 24 hours after the checkout.",
        trigger=EventTrigger(event="CheckoutStarted"),
        profile_filter=HAS_EMAIL,
        # A newer checkout is another checkout: a platform re-sending the same one does not restart the flow.
        exits=(_ORDER_PLACED, ExitEvent(event="CheckoutStarted", where=(
            PropertyFilter(property="checkout_id", op=FilterOp.NEQ, value={"trigger": "checkout_id"}),))),
        reentry=Reentry(mode="once_per", days=7),
        steps=(
            Delay(id="wait_4h", duration=timedelta(hours=4)),
            SendEmail(id="email_1", template_id="builtin:abandoned_checkout_1"),
            Delay(id="wait_24h", until=DateAnchor(property="trigger.occurred_at", offset=timedelta(hours=24))),
            SendEmail(id="email_2", template_id="builtin:abandoned_checkout_2"),
        ),
    )


def _browse_abandonment() -> FlowDefinition:
    return FlowDefinition(
        name="Browse abandonment",
        description="A known shopper viewed a product and neither checked out nor ordered within 2 hours.",
        trigger=EventTrigger(event="ProductViewed"),
        profile_filter=HAS_EMAIL,
        exits=(ExitEvent(event="CheckoutStarted"), _ORDER_PLACED),
        reentry=Reentry(mode="once_per", days=14),
        steps=(
            Delay(id="wait_2h", duration=timedelta(hours=2)),
            SendEmail(id="email", template_id="builtin:browse_abandonment"),
        ),
    )


def _welcome() -> FlowDefinition:
    return FlowDefinition(
        name="Welcome series",
        description="Email consent granted: a welcome now, a second email 3 days later.",
        trigger=EventTrigger(event="ConsentChanged", where=(
            PropertyFilter(property="channel", op=FilterOp.EQ, value="email"),
            PropertyFilter(property="new_state", op=FilterOp.EQ, value="subscribed"),
        )),
        reentry=Reentry(mode="once"),
        steps=(
            SendEmail(id="email_1", template_id="builtin:welcome_1", smart_sending=False),
            Delay(id="wait_3d", duration=timedelta(days=3)),
            SendEmail(id="email_2", template_id="builtin:welcome_2"),
        ),
    )


def _post_purchase() -> FlowDefinition:
    return FlowDefinition(
        name="Post-purchase",
        description="A thank-you for a paid order; 7 days after the order is fulfilled, a review request naming "
                    "its items.",
        trigger=EventTrigger(event="OrderPlaced", where=(PropertyFilter(property="paid", op=FilterOp.EQ, value=True),)),
        reentry=Reentry(mode="every_time"),
        steps=(
            SendEmail(id="thanks", template_id="builtin:post_purchase_thanks", smart_sending=False),
            WaitForEvent(id="fulfilled", event="OrderFulfilled", timeout=timedelta(days=60), on_timeout="exit",
                         where=(PropertyFilter(property="order_id", op=FilterOp.EQ, value={"trigger": "order_id"}),)),
            Delay(id="wait_7d", duration=timedelta(days=7)),
            SendEmail(id="review", template_id="builtin:post_purchase_review"),
        ),
    )


def _win_back() -> FlowDefinition:
    return FlowDefinition(
        name="Win-back",
        description="A buyer entered the churn-risk segment: an email to bring them back; an order ends it.",
        trigger=SegmentTrigger(segment_id=CHURN_RISK_SEGMENT, on="entered"),
        exits=(_ORDER_PLACED,),
        reentry=Reentry(mode="once_per", days=180),
        steps=(SendEmail(id="email", template_id="builtin:win_back"),),
    )


def _vip() -> FlowDefinition:
    return FlowDefinition(
        name="VIP",
        description="A buyer entered the VIP segment: a thank-you for being one of the best customers.",
        trigger=SegmentTrigger(segment_id=VIP_SEGMENT, on="entered"),
        reentry=Reentry(mode="once"),
        steps=(SendEmail(id="email", template_id="builtin:vip"),),
    )


BUILTIN_FLOWS: dict[str, FlowDefinition] = {
    ABANDONED_CHECKOUT: _abandoned_checkout(),
    BROWSE_ABANDONMENT: _browse_abandonment(),
    WELCOME: _welcome(),
    POST_PURCHASE: _post_purchase(),
    WIN_BACK: _win_back(),
    VIP: _vip(),
}


def is_builtin(flow_id: str) -> bool:
    return flow_id in BUILTIN_FLOWS


def builtin_record(workspace_id: str, flow_id: str, now: datetime) -> FlowRecord:
    """A built-in flow as a workspace sees it until it saves its own: a draft, version 1; KeyError for an id
    that is not a built-in."""
    return FlowRecord(workspace_id=workspace_id, flow_id=flow_id, status=FlowStatus.DRAFT, version=1,
                      definition=BUILTIN_FLOWS[flow_id], created_at=now, updated_at=now)


def builtin_records(workspace_id: str, now: datetime) -> list[FlowRecord]:
    """Every built-in flow as a draft, in a stable order."""
    return [builtin_record(workspace_id, flow_id, now) for flow_id in BUILTIN_FLOWS]


__all__ = ["ABANDONED_CHECKOUT", "BROWSE_ABANDONMENT", "BUILTIN_FLOWS", "CHURN_RISK_SEGMENT",
           "POST_PURCHASE", "VIP", "VIP_SEGMENT", "WELCOME", "WIN_BACK", "builtin_record", "builtin_records",
           "is_builtin"]
