"""The console's users in an Amazon Cognito user pool (template.yaml ConsoleUserPool): each user's workspace
and role are custom attributes only an administrator writes (the app client may not), and passwords never
leave Cognito. An invitation is a temporary password Cognito expires after the pool's validity (7 days); the
user chooses a password with it (Cognito's NEW_PASSWORD_REQUIRED challenge).

The console authenticates with the admin flow (ADMIN_USER_PASSWORD_AUTH): the function's role may call it,
a browser may not, so the pool needs no public client and the tokens Cognito answers are not kept: the
console's own session cookie (crm.console.session) carries the sign-in.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from botocore.exceptions import ClientError

from crm.adapters.clients import client
from crm.config import settings
from crm.console.session import ROLES, Role

_WORKSPACE = "custom:workspace_id"
_ROLE = "custom:role"
# Cognito answers these for a wrong password, an unknown user (the pool's PreventUserExistenceErrors) and
# a disabled one alike: the console says the same for each.
_REFUSED = {"NotAuthorizedException", "UserNotFoundException"}
_PASSWORD_RULES = {"InvalidPasswordException", "InvalidParameterException"}


@dataclass(frozen=True)
class ConsoleUser:
    email: str
    workspace_id: str
    role: Role
    enabled: bool = True


@dataclass(frozen=True)
class Invitation:
    user: ConsoleUser
    temporary_password: str


class SignInRefused(Exception):
    """A wrong email or password, an expired invitation or a disabled user (Cognito does not say which)."""


class PasswordRejected(ValueError):
    """A new password the pool's policy refuses: the message is Cognito's, naming the rule."""


class UserExists(ValueError):
    pass


def temporary_password() -> str:
    """A password meeting the pool's policy (template.yaml): 24 characters with each kind the policy asks for."""
    alphabet = string.ascii_letters + string.digits
    body = "".join(secrets.choice(alphabet) for _ in range(20))
    return f"{body}aA1-"


def _role(value: str | None) -> Role:
    for role in ROLES:
        if value == role:
            return role
    return "viewer"  # an attribute edited by hand to something else grants the least


class CognitoUsers:
    def __init__(self, user_pool_id: str | None = None, client_id: str | None = None) -> None:
        self.user_pool_id = user_pool_id or settings().require("console_user_pool_id")
        self.client_id = client_id or settings().require("console_client_id")

    def invite(self, workspace_id: str, email: str, role: Role) -> Invitation:
        """Create the user with a temporary password; Cognito sends nothing (the operator hands over the link)."""
        password = temporary_password()
        try:
            client("cognito-idp").admin_create_user(
                UserPoolId=self.user_pool_id, Username=email, TemporaryPassword=password, MessageAction="SUPPRESS",
                UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"},
                                {"Name": _WORKSPACE, "Value": workspace_id}, {"Name": _ROLE, "Value": role}])
        except ClientError as error:
            if error.response["Error"]["Code"] == "UsernameExistsException":
                raise UserExists(f"a console user {email} exists already") from None
            raise
        return Invitation(ConsoleUser(email, workspace_id, role), password)

    def user(self, email: str) -> ConsoleUser | None:
        """The user as the pool holds it now (None if deleted): the console checks it on every request."""
        try:
            answer = client("cognito-idp").admin_get_user(UserPoolId=self.user_pool_id, Username=email)
        except ClientError as error:
            if error.response["Error"]["Code"] == "UserNotFoundException":
                return None
            raise
        attributes = {a["Name"]: a["Value"] for a in answer.get("UserAttributes", [])}
        workspace_id = attributes.get(_WORKSPACE)
        if not workspace_id:
            return None
        return ConsoleUser(attributes.get("email", email), workspace_id, _role(attributes.get(_ROLE)),
                           bool(answer.get("Enabled", True)))

    def workspace_users(self, workspace_id: str) -> list[ConsoleUser]:
        """The workspace's users, by email. Cognito filters on standard attributes only, so the pool's users are
        read page by page (60 each) and those of other workspaces dropped."""
        found: list[ConsoleUser] = []
        request: dict[str, object] = {"UserPoolId": self.user_pool_id, "Limit": 60}
        while True:
            answer = client("cognito-idp").list_users(**request)
            for listed in answer.get("Users", []):
                attributes = {a["Name"]: a["Value"] for a in listed.get("Attributes", [])}
                if attributes.get(_WORKSPACE) == workspace_id:
                    found.append(ConsoleUser(attributes.get("email", listed["Username"]), workspace_id,
                                             _role(attributes.get(_ROLE)), bool(listed.get("Enabled", True))))
            if not answer.get("PaginationToken"):
                return sorted(found, key=lambda user: user.email)
            request["PaginationToken"] = answer["PaginationToken"]

    def set_role(self, email: str, role: Role) -> None:
        client("cognito-idp").admin_update_user_attributes(
            UserPoolId=self.user_pool_id, Username=email, UserAttributes=[{"Name": _ROLE, "Value": role}])

    def disable(self, email: str) -> None:
        """The user can no longer sign in, and a session of theirs ends at its next request."""
        client("cognito-idp").admin_disable_user(UserPoolId=self.user_pool_id, Username=email)

    def sign_in(self, email: str, password: str) -> ConsoleUser:
        """The user, when the password is theirs (SignInRefused otherwise, or when they must first choose a
        password: an invitation's temporary password signs in only through ``accept``)."""
        answer = self._authenticate(email, password)
        if answer.get("ChallengeName"):
            raise SignInRefused("choose a password with your invitation link first")
        return self._known(email)

    def accept(self, email: str, temporary: str, new_password: str) -> ConsoleUser:
        """Set the password chosen on the invitation page (the temporary one proves the invitation)."""
        answer = self._authenticate(email, temporary)
        if answer.get("ChallengeName") != "NEW_PASSWORD_REQUIRED":
            raise SignInRefused("this invitation has been used already: sign in with your password")
        try:
            client("cognito-idp").admin_respond_to_auth_challenge(
                UserPoolId=self.user_pool_id, ClientId=self.client_id, ChallengeName="NEW_PASSWORD_REQUIRED",
                Session=answer["Session"], ChallengeResponses={"USERNAME": email, "NEW_PASSWORD": new_password})
        except ClientError as error:
            if error.response["Error"]["Code"] in _PASSWORD_RULES:
                raise PasswordRejected(error.response["Error"].get("Message", "the password is refused")) from None
            raise
        return self._known(email)

    def _authenticate(self, email: str, password: str) -> dict[str, object]:
        try:
            answer: dict[str, object] = client("cognito-idp").admin_initiate_auth(
                UserPoolId=self.user_pool_id, ClientId=self.client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": email, "PASSWORD": password})
        except ClientError as error:
            if error.response["Error"]["Code"] in _REFUSED:
                raise SignInRefused("wrong email or password") from None
            raise
        return answer

    def _known(self, email: str) -> ConsoleUser:
        user = self.user(email)
        if user is None or not user.enabled:
            raise SignInRefused("wrong email or password")
        return user
