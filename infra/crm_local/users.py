"""`crm users add`: a console user invited into a workspace, with the operator's (deployer's) credentials; the
link it prints lets the user choose a password (docs/console.md)."""

from __future__ import annotations

from typing import Any

from crm.adapters.stores import DynamoStoreDirectory
from crm.adapters.users import CognitoUsers
from crm.console.invitation import invitation_token, invitation_url
from crm.console.session import Role

from crm_local.operations import stack_outputs


def add_user(stack_name: str, workspace_id: str, email: str, role: Role, api_url: str | None = None) -> dict[str, Any]:
    """The user created in the stack's console pool, and their invitation link (into ``api_url``'s console: the
    stack's API unless given)."""
    outputs = stack_outputs(stack_name)
    if not DynamoStoreDirectory(outputs["TableName"]).workspace_exists(workspace_id):
        raise ValueError(f"no workspace {workspace_id} in stack {stack_name} (`crm store add` makes one)")
    users = CognitoUsers(outputs["ConsoleUserPoolId"], outputs["ConsoleUserPoolClientId"])
    invitation = users.invite(workspace_id, email.strip().lower(), role)
    console = f"{api_url.rstrip('/')}/console" if api_url else outputs["ConsoleUrl"]
    return {"email": invitation.user.email, "workspace_id": workspace_id, "role": role,
            "invitation_url": invitation_url(console, invitation_token(invitation.user.email,
                                                                       invitation.temporary_password))}
