"""The marketer's view of a profile: JSON with money as decimal strings."""

from __future__ import annotations

from typing import Any

from crm.contact import normalise_email
from crm.models.profile import Profile
from crm.money import format_money
from crm.ports import ProfileRepository


def profile_view(profile: Profile) -> dict[str, Any]:
    return {
        "profile_id": profile.profile_id,
        "email": profile.email,
        "phone": profile.phone,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "orders_count": profile.orders_count,
        "total_spent": format_money(profile.total_spent),
        "average_order_value": format_money(profile.average_order_value),
        "currency": profile.currency,
        "first_order_at": profile.first_order_at.isoformat() if profile.first_order_at else None,
        "last_order_at": profile.last_order_at.isoformat() if profile.last_order_at else None,
        "created_at": profile.created_at.isoformat(),
        "updated_at": profile.updated_at.isoformat(),
    }


def find_by_email(repository: ProfileRepository, workspace_id: str, email: str) -> Profile | None:
    normalised = normalise_email(email)
    if normalised is None:
        raise ValueError(f"not an email address: {email!r}")
    profile_id = repository.profile_id_for_identity(workspace_id, f"email#{normalised}")
    return repository.get_profile(workspace_id, profile_id) if profile_id else None
