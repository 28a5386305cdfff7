"""The marketer API: profiles, scoped to the workspace of the caller's key."""

from __future__ import annotations

from typing import Any

from chalice import BadRequestError, Chalice, NotFoundError, UnauthorizedError
from crm import wiring
from crm.customers import find_by_email, profile_view

app = Chalice(app_name="crm-api")


def _workspace() -> str:
    key = app.current_request.headers.get("x-api-key")
    workspace_id = wiring.store_directory().workspace_for_api_key(key) if key else None
    if workspace_id is None:
        raise UnauthorizedError("a valid x-api-key header is required")
    return workspace_id


@app.route("/customers", methods=["GET"])
def find_customers() -> dict[str, Any]:
    workspace_id = _workspace()
    email = (app.current_request.query_params or {}).get("email")
    if not email:
        raise BadRequestError("query parameter 'email' is required")
    try:
        profile = find_by_email(wiring.profile_repository(), workspace_id, email)
    except ValueError as error:
        raise BadRequestError(str(error)) from None
    if profile is None:
        raise NotFoundError(f"no customer with email {email}")
    return profile_view(profile)


@app.route("/customers/{profile_id}", methods=["GET"])
def get_customer(profile_id: str) -> dict[str, Any]:
    profile = wiring.profile_repository().get_profile(_workspace(), profile_id)
    if profile is None:
        raise NotFoundError(f"no customer {profile_id}")
    return profile_view(profile)
