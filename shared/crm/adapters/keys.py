"""Every table key, in one place. Keys are partitioned by workspace (the tenant).

Access patterns:
- webhook -> store by platform + domain:         STORE#{platform}#{domain} / STORE
- storefront write key -> store (a pointer):     WRITEKEY#{write_key} / WRITEKEY  (holds platform + domain)
- marketer key -> workspace (hash of the key):    APIKEY#{sha256} / APIKEY  (key id, expiry, revocation)
- the workspace's marketer keys, by key id:       WS#{ws}#APIKEYS / {key_id}  (the same, and the hash: a
  key is listed and revoked by id, and the key itself is never stored)
- workspace record:                               WS#{ws} / WORKSPACE
- identity (email, phone, ids) -> profile:        WS#{ws}#IDENTITY#{sha256(identity)} / IDENTITY
  (hashed: keys carry no personal data, and an erased identity keeps only its hash)
- profile by id:                                  WS#{ws}#PROFILE#{profile_id} / PROFILE
- a profile's timeline, by time:                  WS#{ws}#PROFILE#{profile_id} / T#{iso time}#{type}#{ref}
- order by store + platform order id:             WS#{ws}#ORDER#{store_id}#{order_id} / ORDER
- platform customer account:                      WS#{ws}#CUSTOMER#{store_id}#{customer_id} / CUSTOMER
- an activity event already applied:              WS#{ws}#EVENT#{store_id}#{sha256(event_id)} / EVENT
- a privacy request carried out (no personal data): WS#{ws}#PRIVACY#{request_id} / PRIVACY
- its job while it runs (progress, cursor; the shopper's terms until done): WS#{ws}#PRIVACY#{request_id} / JOB
- the workspace's profiles (index ProfilesByWorkspace, sparse, keys only): ws_bucket = WS#{ws}#{bucket},
  ws_order = a hash of the profile id; only profile items carry them (docs/workspace-reads.md)
- segment definition and computed state:          WS#{ws}#SEGMENT#{segment_id} / SEGMENT
- the workspace's segments, one item each:        WS#{ws}#SEGMENTS / {segment_id}
  (a catalogue, so listing is one Query, not a Scan of the table; written with the definition)
- segment membership, paged by profile id:        WS#{ws}#SEGMENT#{segment_id}#MEMBERS / {profile_id}
- a segment's size, beside its record:            WS#{ws}#SEGMENT#{segment_id} / SIZE
  (a small item of its own: every membership change adds to it, and DynamoDB bills an update by the size
  of the whole item, which for the record holds the definition and 30 growth points)
- the segments one profile is in (the guard of every membership change; in the profile's partition, so a
  parallel Scan meets it next to the profile):     WS#{ws}#PROFILE#{profile_id} / SEGMENTS
- a recomputation run, and the workspace's active one: WS#{ws}#SEGRUN#{run_id} / RUN, WS#{ws}#SEGRUN / ACTIVE
- a chained share's recorded part, beside its run:   WS#{ws}#SEGRUN#{run_id} / PART#{share:04d}#{part:06d}
- the last hour the hourly runs read:             WS#{ws}#SEGRUN / HOURLY
- the population statistics of the last run (RFM quintiles, VIP threshold): WS#{ws}#SEGPOPULATION / POPULATION
- every workspace (the schedule recomputes each): WORKSPACES / {ws}
- the workspace's built-in segment settings:      WS#{ws} / SEGMENT_SETTINGS
  (one item, replaced whole; absent: the defaults. Beside the workspace record, not in the catalogue
  partition, whose every item is a segment)
- an asynchronous segment export job by id:       WS#{ws}#EXPORT#{export_id} / EXPORT
  (options, status, counts and the file's S3 key; no personal data. Read by id only: the API answers
  the id when the job is started, and the worker's queue message names it)
- the workspace's reporting currency and rates:   WS#{ws}#CURRENCY / SETTINGS
  (a partition of its own: the profiles function reads it in the same BatchGetItem as the event's items,
  which are told apart by pk)
- a re-derivation of the profiles' figures after the rates changed: WS#{ws}#CURRENCYJOB#{job_id} / JOB
- the workspace's prediction settings and last fit: WS#{ws}#PREDICTIONS / SETTINGS, WS#{ws}#PREDICTIONS / FIT
  (each profile's prediction is an attribute of its profile item)
- the products bought together (crm.affinity), one item per product, by a hash of its title:
                                                  WS#{ws}#AFFINITY / {sha256(title)}  (one Query lists them)
"""

from __future__ import annotations

import hashlib

Key = dict[str, str]

TIMELINE_PREFIX = "T#"
PROFILE_SK = "PROFILE"
PROFILE_SEGMENTS_SK = "SEGMENTS"
WORKSPACES_PK = "WORKSPACES"
# The sparse index by workspace (template.yaml's Table) and its buckets: a workspace's profiles are spread
# over this many index partitions by a hash of the profile id, so neither its writes nor a run's reads meet
# the throughput limit of one partition, and a run fans out over buckets.
WORKSPACE_INDEX = "ProfilesByWorkspace"
WORKSPACE_BUCKETS = 32


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def store(platform: str, domain: str) -> Key:
    return {"pk": f"STORE#{platform}#{domain}", "sk": "STORE"}


def write_key(key: str) -> Key:
    return {"pk": f"WRITEKEY#{key}", "sk": "WRITEKEY"}


def api_key(key: str) -> Key:
    return api_key_by_digest(_digest(key))


def api_key_digest(key: str) -> str:
    return _digest(key)


def api_key_by_digest(digest: str) -> Key:
    return {"pk": f"APIKEY#{digest}", "sk": "APIKEY"}


def workspace_api_keys(workspace_id: str) -> str:
    """The partition of a workspace's key catalogue (one Query lists them)."""
    return f"WS#{workspace_id}#APIKEYS"


def workspace_api_key(workspace_id: str, key_id: str) -> Key:
    return {"pk": workspace_api_keys(workspace_id), "sk": key_id}


def workspace_stores(workspace_id: str) -> str:
    """The partition of a workspace's store catalogue (the console's Settings list it with one Query)."""
    return f"WS#{workspace_id}#STORES"


def workspace_store(workspace_id: str, store_id: str) -> Key:
    return {"pk": workspace_stores(workspace_id), "sk": store_id}


def workspace(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}", "sk": "WORKSPACE"}


def identity(workspace_id: str, identity_value: str) -> Key:
    return {"pk": f"WS#{workspace_id}#IDENTITY#{_digest(identity_value)}", "sk": "IDENTITY"}


def profile(workspace_id: str, profile_id: str) -> Key:
    return {"pk": f"{profile_prefix(workspace_id)}{profile_id}", "sk": PROFILE_SK}


def workspace_index(workspace_id: str, profile_id: str) -> Key:
    """The index attributes of a profile item: its bucket, and its place in the bucket (a hash, so that the
    first profiles of a bucket are a random sample of the workspace)."""
    digest = _digest(profile_id)
    return {"ws_bucket": workspace_bucket(workspace_id, int(digest, 16) % WORKSPACE_BUCKETS),
            "ws_order": digest[:16]}


def workspace_bucket(workspace_id: str, bucket: int) -> str:
    return f"WS#{workspace_id}#{bucket:02d}"


def profile_prefix(workspace_id: str) -> str:
    return f"WS#{workspace_id}#PROFILE#"


def timeline(workspace_id: str, profile_id: str, sort_key: str) -> Key:
    return {"pk": f"WS#{workspace_id}#PROFILE#{profile_id}", "sk": sort_key}


def order(workspace_id: str, store_id: str, order_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#ORDER#{store_id}#{order_id}", "sk": "ORDER"}


def customer(workspace_id: str, store_id: str, customer_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#CUSTOMER#{store_id}#{customer_id}", "sk": "CUSTOMER"}


def event(workspace_id: str, store_id: str, event_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#EVENT#{store_id}#{_digest(event_id)}", "sk": "EVENT"}


def privacy_request(workspace_id: str, request_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#PRIVACY#{request_id}", "sk": "PRIVACY"}


def privacy_job(workspace_id: str, request_id: str) -> Key:
    return {"pk": privacy_request(workspace_id, request_id)["pk"], "sk": "JOB"}


def segment(workspace_id: str, segment_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#SEGMENT#{segment_id}", "sk": "SEGMENT"}


def segment_size(workspace_id: str, segment_id: str) -> Key:
    return {"pk": segment(workspace_id, segment_id)["pk"], "sk": "SIZE"}


def segment_catalogue(workspace_id: str, segment_id: str) -> Key:
    return {"pk": segment_catalogue_pk(workspace_id), "sk": segment_id}


def segment_catalogue_pk(workspace_id: str) -> str:
    return f"WS#{workspace_id}#SEGMENTS"


def segment_member(workspace_id: str, segment_id: str, profile_id: str) -> Key:
    return {"pk": segment_members_pk(workspace_id, segment_id), "sk": profile_id}


def segment_members_pk(workspace_id: str, segment_id: str) -> str:
    return f"WS#{workspace_id}#SEGMENT#{segment_id}#MEMBERS"


def profile_segments(workspace_id: str, profile_id: str) -> Key:
    return {"pk": f"{profile_prefix(workspace_id)}{profile_id}", "sk": PROFILE_SEGMENTS_SK}


def segment_due_pk(workspace_id: str, hour: str) -> str:
    """The profiles whose time-relative memberships may change within one hour (``hour``: 2026-12-04T10)."""
    return f"WS#{workspace_id}#SEGDUE#{hour}"


def segment_due(workspace_id: str, hour: str, profile_id: str) -> Key:
    return {"pk": segment_due_pk(workspace_id, hour), "sk": profile_id}


def segment_run(workspace_id: str, run_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#SEGRUN#{run_id}", "sk": "RUN"}


def active_segment_run(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#SEGRUN", "sk": "ACTIVE"}


def segment_hourly(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#SEGRUN", "sk": "HOURLY"}


def segment_population(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#SEGPOPULATION", "sk": "POPULATION"}


def workspace_entry(workspace_id: str) -> Key:
    return {"pk": WORKSPACES_PK, "sk": workspace_id}


def segment_sketch_object(workspace_id: str, run_id: str, share: int, token: str | None = None) -> str:
    """The S3 key of one share's population sketch (too large for an item at 50,000 distinct amounts), or of
    one part's (a chained share's hop, crm.models.segment_runs.RunPart)."""
    part = f"-{token}" if token else ""
    return f"segment-runs/{workspace_id}/{run_id}/sketch-{share:04d}{part}.json"


def segment_profiles_object(workspace_id: str, run_id: str, share: int, token: str | None = None) -> str:
    """The S3 key of one share's profiles and their sets, as the run's sketch read them (JSON Lines), or of
    one part's."""
    part = f"-{token}" if token else ""
    return f"segment-runs/{workspace_id}/{run_id}/profiles-{share:04d}{part}.jsonl"


def segment_run_parts(workspace_id: str, run_id: str, share: int) -> Key:
    """The run's partition and the sort key prefix of one chained share's recorded parts (an item each, beside
    the run's record: a record holding them would grow past an item's 400 KB at a million profiles)."""
    return {"pk": segment_run(workspace_id, run_id)["pk"], "sk": f"PART#{share:04d}#"}


def segment_run_part(workspace_id: str, run_id: str, share: int, part: int) -> Key:
    prefix = segment_run_parts(workspace_id, run_id, share)
    return {"pk": prefix["pk"], "sk": f"{prefix['sk']}{part:06d}"}


def segment_run_evaluated_parts(workspace_id: str, run_id: str, share: int) -> Key:
    """The sort key prefix of one chained share's recorded evaluation parts, beside its sketch's parts."""
    return {"pk": segment_run(workspace_id, run_id)["pk"], "sk": f"EVALUATED#{share:04d}#"}


def segment_run_evaluated_part(workspace_id: str, run_id: str, share: int, part: int) -> Key:
    prefix = segment_run_evaluated_parts(workspace_id, run_id, share)
    return {"pk": prefix["pk"], "sk": f"{prefix['sk']}{part:06d}"}


def segment_settings(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}", "sk": "SEGMENT_SETTINGS"}


def export_job(workspace_id: str, export_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#EXPORT#{export_id}", "sk": "EXPORT"}


def currency_settings(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#CURRENCY", "sk": "SETTINGS"}


def prediction_settings(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#PREDICTIONS", "sk": "SETTINGS"}


def prediction_fit(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#PREDICTIONS", "sk": "FIT"}


def product_affinity_pk(workspace_id: str) -> str:
    return f"WS#{workspace_id}#AFFINITY"


def product_affinity(workspace_id: str, title: str) -> Key:
    return {"pk": product_affinity_pk(workspace_id), "sk": _digest(title)}


def currency_job(workspace_id: str, job_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#CURRENCYJOB#{job_id}", "sk": "JOB"}


# Flows (crm.flows). Written down before the keys:
# - the workspace's flows, listed in one Query:          WS#{ws}#FLOWS / {flow_id}
# - a profile's flow runs (in the profile's partition, so an erasure of the partition takes them, and one
#   Query lists a profile's runs when an exit event or a merge arrives):
#                                                         WS#{ws}#PROFILE#{profile_id} / FLOWRUN#{run_id}
# - a run's step claims (exactly once):                   WS#{ws}#PROFILE#{profile_id} / FLOWSTEP#{run_id}#{step_id}
# - the suppression list, by a hash of the address:       WS#{ws}#SUPPRESSION#{sha256(address)} / SUPPRESSION
# - messaging settings:                                   WS#{ws}#MESSAGING / SETTINGS
# - templates:                                            WS#{ws}#TEMPLATES / {template_id}
FLOW_RUN_PREFIX = "FLOWRUN#"
FLOW_STEP_PREFIX = "FLOWSTEP#"


def flows_pk(workspace_id: str) -> str:
    return f"WS#{workspace_id}#FLOWS"


def flow(workspace_id: str, flow_id: str) -> Key:
    return {"pk": flows_pk(workspace_id), "sk": flow_id}


def flow_run(workspace_id: str, profile_id: str, run_id: str) -> Key:
    return {"pk": f"{profile_prefix(workspace_id)}{profile_id}", "sk": f"{FLOW_RUN_PREFIX}{run_id}"}


def flow_step(workspace_id: str, profile_id: str, run_id: str, step_id: str) -> Key:
    return {"pk": f"{profile_prefix(workspace_id)}{profile_id}", "sk": f"{FLOW_STEP_PREFIX}{run_id}#{step_id}"}


def suppression(workspace_id: str, address: str) -> Key:
    return {"pk": f"WS#{workspace_id}#SUPPRESSION#{_digest(address)}", "sk": "SUPPRESSION"}


def messaging_settings(workspace_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#MESSAGING", "sk": "SETTINGS"}


def templates_pk(workspace_id: str) -> str:
    return f"WS#{workspace_id}#TEMPLATES"


def template(workspace_id: str, template_id: str) -> Key:
    return {"pk": templates_pk(workspace_id), "sk": template_id}


# Flow stats (issue 11; crm.models.flow_stats):
# - a flow message sent and its events (in the profile's partition, so an erasure takes it; Query
#   begins_with MSG# lists a profile's messages for attribution): WS#{ws}#PROFILE#{profile_id} / MSG#{message_id}
# - the message's owner by message id (SNS SMS status names only the message; ids only, no personal data):
#                                                         MESSAGE#{message_id} / MESSAGE
# - a flow's counters, one item per day, step and variant: WS#{ws}#FLOWSTATS#{flow_id} / {day}#{step}#{variant}
#   (a day range is one Query; "-" is the flow-wide step or no variant)
# - an A/B winner once decided:                           WS#{ws}#FLOWSTATS#{flow_id} / WINNER#{split_id}
# - an order's attribution (at most one per order):      WS#{ws}#ATTRIBUTION#{store_id}#{order_id} / ATTRIBUTION
FLOW_MESSAGE_PREFIX = "MSG#"
SPLIT_WINNER_PREFIX = "WINNER#"


def flow_message(workspace_id: str, profile_id: str, message_id: str) -> Key:
    return {"pk": f"{profile_prefix(workspace_id)}{profile_id}", "sk": f"{FLOW_MESSAGE_PREFIX}{message_id}"}


def message_pointer(message_id: str) -> Key:
    return {"pk": f"MESSAGE#{message_id}", "sk": "MESSAGE"}


def flow_counters_pk(workspace_id: str, flow_id: str) -> str:
    return f"WS#{workspace_id}#FLOWSTATS#{flow_id}"


def flow_counters(workspace_id: str, flow_id: str, day: str, step_id: str, variant: str) -> Key:
    """``day`` is an ISO date: the sort key orders by day, so a range of days is one Query."""
    return {"pk": flow_counters_pk(workspace_id, flow_id), "sk": f"{day}#{step_id}#{variant}"}


def split_winner(workspace_id: str, flow_id: str, split_id: str) -> Key:
    return {"pk": flow_counters_pk(workspace_id, flow_id), "sk": f"{SPLIT_WINNER_PREFIX}{split_id}"}


def attribution(workspace_id: str, store_id: str, order_id: str) -> Key:
    return {"pk": f"WS#{workspace_id}#ATTRIBUTION#{store_id}#{order_id}", "sk": "ATTRIBUTION"}


SHORT_LINK_PREFIX = "SHORTLINK#"


def short_link(code: str) -> Key:
    """An SMS's short link (crm.messaging.shortlinks), read by code alone by the public track function."""
    return {"pk": f"LINK#{code}", "sk": "LINK"}


def short_link_mark(workspace_id: str, profile_id: str, code: str) -> Key:
    """The short link's mark in its profile's partition: an erasure finds the link from it."""
    return {"pk": f"{profile_prefix(workspace_id)}{profile_id}", "sk": f"{SHORT_LINK_PREFIX}{code}"}
