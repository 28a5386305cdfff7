"""The marketer API: profiles and their timelines, scoped to the workspace of the caller's key."""

from __future__ import annotations

from typing import Any

from chalice import BadRequestError, Chalice, NotFoundError, UnauthorizedError
from crm import wiring
from crm.customers import find_profile, profile_view, timeline_page
from crm.models.profile import Profile

app = Chalice(app_name="crm-api")


def _workspace() -> str:
    key = app.current_request.headers.get("x-api-key")
    workspace_id = wiring.store_directory().workspace_for_api_key(key) if key else None
    if workspace_id is None:
        raise UnauthorizedError("a valid x-api-key header is required")
    return workspace_id


def _query() -> dict[str, str]:
    return dict(app.current_request.query_params or {})


def _profile(profile_id: str) -> Profile:
    profile = wiring.profile_repository().get_profile(_workspace(), profile_id)
    if profile is None:
        raise NotFoundError(f"no customer {profile_id}")
    return profile


@app.route("/customers", methods=["GET"])
def find_customers() -> dict[str, Any]:
    workspace_id = _workspace()
    query = _query()
    try:
        profile = find_profile(wiring.profile_repository(), workspace_id, email=query.get("email"),
                               phone=query.get("phone"))
    except ValueError as error:
        raise BadRequestError(str(error)) from None
    if profile is None:
        raise NotFoundError(f"no customer with {'email ' + query['email'] if 'email' in query else 'that phone'}")
    return profile_view(profile)


@app.route("/customers/{profile_id}", methods=["GET"])
def get_customer(profile_id: str) -> dict[str, Any]:
    return profile_view(_profile(profile_id))


@app.route("/customers/{profile_id}/timeline", methods=["GET"])
def get_timeline(profile_id: str) -> dict[str, Any]:
    query = _query()
    profile = _profile(profile_id)
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise BadRequestError("limit must be a whole number") from None
    try:
        return timeline_page(wiring.profile_repository(), profile, limit, query.get("cursor"))
    except ValueError as error:
        raise BadRequestError(str(error)) from None
