"""Every table key, in one place. Keys are partitioned by workspace (the tenant).

Access patterns:
- webhook -> store by platform + domain:         STORE#{platform}#{domain} / STORE
- storefront write key -> store (a pointer):     WRITEKEY#{write_key} / WRITEKEY  (holds platform + domain)
- marketer key -> workspace (hash of the key):    APIKEY#{sha256} / APIKEY
- workspace record:                               WS#{ws} / WORKSPACE
- identity (email, phone, ids) -> profile:        WS#{ws}#IDENTITY#{identity} / IDENTITY
- profile by id:                                  WS#{ws}#PROFILE#{profile_id} / PROFILE
- order by store + platform order id:             WS#{ws}#ORDER#{store_id}#{order_id} / ORDER
"""

from __future__ import annotations

import hashlib

Key = dict[str, str]


def store(platform: str, domain: str) -> Key:
    return {"pk": f"STORE#{platform}#{domain}", "sk": "STORE"}


def write_key(key: str) -> Key:
    return {"pk": f"WRITEKEY#{key}", "sk": "WRITEKEY"}


def api_key(key: str) -> Key:
    return {"pk": f"APIKEY#{hashlib.sha256(key.encode()).hexdigest()}", "sk": "APIKEY"}


def workspace(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}", "sk": "WORKSPACE"}


def identity(workspace_id: str, identity_value: str) -> Key:
    return {"pk": f"WS#{workspace_id}#IDENTITY#{identity_value}", "sk": "IDENTITY"}


def profile(workspace_id: str, profile_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#PROFILE#{profile_id}", "sk": "PROFILE"}


def order(workspace_id: str, store_id: str, order_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#ORDER#{store_id}#{order_id}", "sk": "ORDER"}
