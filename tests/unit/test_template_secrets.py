"""The store secrets' IAM grant in template.yaml: read-only to the functions that verify or call a store, read and
write to the console (its Settings add stores and rotate their secrets), nobody else, only on this stack's prefix (the
one crm.adapters.secrets names secrets under)."""

from __future__ import annotations

import json
from typing import Any

from crm.adapters.secrets import secrets_prefix
from crm_local.template import Stack

READERS = {"WebhooksFunction", "ProfilesFunction"}  # signatures; the BigCommerce API token
WRITERS = {"ConsoleFunction"}  # Settings: a store added, its webhook secret rotated or retired
WRITER_ACTIONS = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:CreateSecret",
                  "secretsmanager:DeleteSecret"]
LINK_KEY_READERS = {"TrackFunction"}  # verifies unsubscribe and confirm links (the flows function signs them)
LINK_SECRET = {"Ref": "LinkSigningSecret"}
CONSOLE_SECRET = {"Ref": "ConsoleSessionSecret"}


def _secret_statements(stack: Stack, function: str, link_key: bool = False) -> list[dict[str, Any]]:
    """The function's statements on store secrets (or, with ``link_key``, on the link signing key)."""
    role = stack.resources[f"{function}Role"]["Properties"]
    found = []
    for policy in role.get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        for statement in statements if isinstance(statements, list) else [statements]:
            if "secretsmanager:" in json.dumps(statement.get("Action")) and statement.get("Resource") != \
                    CONSOLE_SECRET and ((statement.get("Resource") == LINK_SECRET) is link_key):
                found.append(statement)
    return found


def test_only_the_webhooks_and_profiles_functions_read_store_secrets_on_the_stack_prefix(stack: Stack) -> None:
    functions = {name for name, resource in stack.resources.items() if resource["Type"] == "AWS::Lambda::Function"}
    assert functions >= READERS | WRITERS
    for function in sorted(functions):
        statements = _secret_statements(stack, function)
        if function not in READERS | WRITERS:
            assert statements == [], f"{function} may touch secrets"
            continue
        [statement] = statements
        assert statement["Effect"] == "Allow"
        assert statement["Action"] in ((WRITER_ACTIONS,) if function in WRITERS else (
            ["secretsmanager:GetSecretValue"], "secretsmanager:GetSecretValue"))
        template, names = statement["Resource"]["Fn::Sub"], {}
        if isinstance(template, list):
            template, names = template
        assert not names
        prefix = secrets_prefix("${Table}")
        account = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
        assert template == f"{account}:secret:{prefix}*"


def test_only_the_functions_that_verify_or_sign_links_read_the_link_key_and_only_that_key(stack: Stack) -> None:
    assert stack.resources["LinkSigningSecret"]["Type"] == "AWS::SecretsManager::Secret"
    assert "GenerateSecretString" in stack.resources["LinkSigningSecret"]["Properties"]
    functions = {name for name, resource in stack.resources.items() if resource["Type"] == "AWS::Lambda::Function"}
    # The flows function (issue 10's runtime) signs links once it is in the template: it reads the key too.
    readers = LINK_KEY_READERS | ({"FlowsFunction"} & functions)
    for function in sorted(functions):
        statements = _secret_statements(stack, function, link_key=True)
        if function not in readers:
            assert statements == [], f"{function} may read the link signing key"
            continue
        [statement] = statements
        assert statement["Effect"] == "Allow"
        assert statement["Action"] in (["secretsmanager:GetSecretValue"], "secretsmanager:GetSecretValue")
        environment = stack.resources[function]["Properties"]["Environment"]["Variables"]
        assert environment["LINK_SIGNING_SECRET"] == LINK_SECRET


def test_only_the_console_reads_its_session_key_and_only_that_key(stack: Stack) -> None:
    assert "GenerateSecretString" in stack.resources["ConsoleSessionSecret"]["Properties"]
    for function in sorted(n for n, r in stack.resources.items() if r["Type"] == "AWS::Lambda::Function"):
        role = stack.resources[f"{function}Role"]["Properties"]
        statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]
                      if "ConsoleSessionSecret" in json.dumps(s.get("Resource"))]
        if function != "ConsoleFunction":
            assert statements == [], f"{function} may read the console's session key"
            continue
        [statement] = statements
        assert (statement["Action"], statement["Resource"]) == (["secretsmanager:GetSecretValue"], CONSOLE_SECRET)
        assert stack.resources[function]["Properties"]["Environment"]["Variables"]["CONSOLE_SESSION_SECRET"] == \
            CONSOLE_SECRET
