"""A proof: one email step of a flow rendered and sent to one address the marketer names, marked as a test
(POST /flows/{flow_id}/test-send), and a profile's runs of a flow (GET /flows/{flow_id}/runs).

The proof is rendered like a real send (crm.messaging.render: sandbox, CSS inlined, footer) with a real
profile when one is named, else the sample shopper, and always the sample trigger (a cart with an item), since
no trigger happened. It is not recorded on any timeline, counts for no Smart Sending window and carries no
working unsubscribe link: its subject starts with "[Test]" and SES tags it ``test=true``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crm.contact import normalise_email
from crm.flows.defaults import DefinitionInvalid
from crm.flows.definition import find_step, walk_steps
from crm.flows.manage import FlowConflict, get, parse_model, run_view
from crm.flows.ports import EmailSender, FlowCatalogue, MessagingStore, RunStore, SenderIdentities
from crm.messaging.manage import sender_verification
from crm.messaging.render import profile_context, render_email, sample_context, store_context
from crm.models.flows import SendEmail
from crm.models.messaging import EmailTemplate, OutgoingEmail
from crm.models.profile import Profile
from crm.ports import ProfileRepository

TEST_SUBJECT_PREFIX = "[Test] "


class ProfileNotFound(LookupError):
    """The named profile (or step) is not in this workspace (or flow): 404."""


class ProofRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    to: str = Field(min_length=3, max_length=254)
    step_id: str | None = Field(default=None, max_length=24)
    profile_id: str | None = Field(default=None, max_length=64)


def _email_step(catalogue: FlowCatalogue, workspace_id: str, flow_id: str, step_id: str | None) -> SendEmail:
    definition = get(catalogue, workspace_id, flow_id).definition
    if step_id is not None:
        step = find_step(definition, step_id)
        if step is None:
            raise ProfileNotFound(f"step_id: flow {flow_id} has no step {step_id!r}")
        if not isinstance(step, SendEmail):
            raise FlowConflict(f"step_id: step {step_id!r} is a {step.kind} step, not an email")
        return step
    first = next((step for _, step in walk_steps(definition.steps) if isinstance(step, SendEmail)), None)
    if first is None:
        raise FlowConflict(f"flow {flow_id} sends no email")
    return first


def _shopper(profiles: ProfileRepository, workspace_id: str, profile_id: str | None) -> dict[str, Any]:
    if profile_id is None:
        shopper: dict[str, Any] = sample_context()["profile"]
        return shopper
    found: Profile | None = profiles.get_profile(workspace_id, profile_id)
    if found is None:
        raise ProfileNotFound(f"no customer {profile_id}")
    return profile_context(found)


def send_proof(catalogue: FlowCatalogue, messaging: MessagingStore, profiles: ProfileRepository, sender: EmailSender,
               identities: SenderIdentities, workspace_id: str, flow_id: str,
               document: dict[str, Any]) -> dict[str, Any]:
    """Render the flow's email step (``step_id``, else its first) for the profile (``profile_id``, else the
    sample shopper) and send it to ``to``: the answer names the step, template, address and SES message id.
    A from address SES has not verified yet is a conflict (SES would refuse the send)."""
    request = parse_model(ProofRequest, document)
    to = normalise_email(request.to)
    if to is None or "@" not in to.strip("@"):
        raise DefinitionInvalid(f"to: {request.to!r} is not an email address")
    step = _email_step(catalogue, workspace_id, flow_id, request.step_id)
    found = messaging.get_template(workspace_id, step.template_id)
    if found is None or not isinstance(found.template, EmailTemplate):
        raise FlowConflict(f"step {step.id} sends template {step.template_id}, which is no email template here")
    settings = messaging.messaging_settings(workspace_id)
    if settings.from_address is None:
        raise FlowConflict("no from address: PUT /settings/messaging first")
    verification = sender_verification(identities, settings.from_address, request=False)
    if verification is None or verification["status"] != "SUCCESS":
        status = verification["status"] if verification else "NOT_REQUESTED"
        raise FlowConflict(f"the from address {settings.from_address} is not verified by SES yet ({status}): "
                           "follow the link SES mailed to it")
    sample = sample_context()
    context = {**sample, "profile": _shopper(profiles, workspace_id, request.profile_id),
               "store": store_context(settings)}
    rendered = render_email(found.template, context)
    message_id = sender.send(OutgoingEmail(
        workspace_id=workspace_id, profile_id=request.profile_id or "sample", to=to,
        from_address=settings.from_address, from_name=settings.from_name, reply_to=settings.reply_to,
        subject=TEST_SUBJECT_PREFIX + rendered.subject, html=rendered.html, text=rendered.text,
        tags={"workspace": workspace_id, "flow": flow_id, "step": step.id, "test": "true"}))
    return {"flow_id": flow_id, "step_id": step.id, "template_id": step.template_id, "to": to,
            "profile_id": request.profile_id, "message_id": message_id, "test": True}


def runs_of(catalogue: FlowCatalogue, runs: RunStore, profiles: ProfileRepository, workspace_id: str, flow_id: str,
            profile_id: str | None) -> dict[str, Any]:
    """The profile's runs of the flow, oldest first (a merged profile's id is followed to the survivor)."""
    get(catalogue, workspace_id, flow_id)
    if not profile_id:
        raise DefinitionInvalid("profile_id: required (runs are kept per profile: GET /customers finds one)")
    profile = profiles.get_profile(workspace_id, profile_id)
    if profile is None:
        raise ProfileNotFound(f"no customer {profile_id}")
    found = sorted(runs.runs_of_profile(workspace_id, profile.profile_id, flow_id), key=lambda run: run.entered_at)
    return {"flow_id": flow_id, "profile_id": profile.profile_id, "runs": [run_view(run) for run in found]}
