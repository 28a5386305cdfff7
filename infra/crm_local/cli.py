"""The `crm` command: run the local stack, register stores, inspect dead letters, run the demo."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from crm.models.stores import Platform

STOP_TIMEOUT_SECONDS = 20


def _local(args: argparse.Namespace) -> int:
    from crm_local.runtime import DEFAULT_SENDER, LocalRuntime

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints every thread's stack
    runtime = LocalRuntime(port=args.port, aws_port=args.aws_port, stack_name=args.stack,
                           template=args.template, log_level=args.log_level,
                           senders=(DEFAULT_SENDER, *(args.sender or ())),
                           parameters=dict(args.parameter_overrides or ()))
    runtime.start()
    try:
        print(f"ready: api {runtime.api_url} aws {runtime.aws_endpoint} stack {args.stack} "
              f"(export AWS_ENDPOINT_URL={runtime.aws_endpoint})", flush=True)
        while not stop.wait(0.5):  # a timed wait: the signal handler's flag is seen within half a second
            pass
    finally:
        stopping = threading.Thread(target=runtime.stop, name="stop", daemon=True)
        stopping.start()
        stopping.join(STOP_TIMEOUT_SECONDS)
        print("stopped" if not stopping.is_alive() else "stopped (some servers did not shut down in time)",
              flush=True)
    # Every server thread is a daemon; leave without waiting on anything a library left running.
    sys.stdout.flush()
    os._exit(0)


def _store_add(args: argparse.Namespace) -> int:
    from crm_local.operations import add_store

    registration = add_store(args.stack, args.platform, args.domain, args.webhook_secret, args.api_token,
                             workspace_id=args.workspace, origins=args.origin or (), currency=args.currency)
    print(registration.model_dump_json())
    return 0


def _store_rotate_secret(args: argparse.Namespace) -> int:
    from crm_local.access import rotate_secret

    print(json.dumps(rotate_secret(args.stack, args.store, args.webhook_secret)))
    return 0


def _store_retire_secret(args: argparse.Namespace) -> int:
    from crm_local.access import retire_secret

    print(json.dumps(retire_secret(args.stack, args.store)))
    return 0


def _store_migrate_secrets(args: argparse.Namespace) -> int:
    from crm_local.access import migrate_secrets

    print(json.dumps(migrate_secrets(args.stack)))
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from crm_local.access import list_keys

    for key in list_keys(args.stack, args.workspace):
        print(json.dumps(key))
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from crm_local.access import create_key

    print(json.dumps(create_key(args.stack, args.workspace, args.expires_at)))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from crm_local.access import revoke_key

    print(json.dumps(revoke_key(args.stack, args.workspace, args.key_id)))
    return 0


def _users_add(args: argparse.Namespace) -> int:
    from crm_local.users import add_user

    api = args.api or ("http://127.0.0.1:8000" if _local_endpoint() else None)
    print(json.dumps(add_user(args.stack, args.workspace, args.email, args.role, api)))
    return 0


def _dlq_list(args: argparse.Namespace) -> int:
    from crm_local.operations import list_dead_letters

    for entry in list_dead_letters(args.stack, args.limit):
        print(json.dumps(entry))
    return 0


def _dlq_redrive(args: argparse.Namespace) -> int:
    from crm_local.operations import redrive_dead_letters

    print(json.dumps({"redriven": redrive_dead_letters(args.stack)}))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from crm_local.operations import replay_archive

    report = replay_archive(args.stack, args.store, args.since, args.until)
    print(json.dumps(asdict(report)))
    return 1 if report.unreadable_objects else 0


def _import(args: argparse.Namespace) -> int:
    from crm.imports.service import ExportKind

    from crm_local.operations import import_file

    kind, path = (ExportKind.ORDERS, args.orders) if args.orders else (ExportKind.CUSTOMERS, args.customers)
    result = import_file(args.stack, args.platform, args.store, kind, path, dry_run=args.dry_run)
    print(json.dumps(result.as_json()))
    return 0


def _segments_run(args: argparse.Namespace) -> int:
    from crm_local.operations import start_segment_runs

    print(json.dumps({"runs": start_segment_runs(args.stack, args.workspace)}))
    return 0


def _privacy_status(args: argparse.Namespace) -> int:
    from crm_local.operations import privacy_status

    status = privacy_status(args.stack, args.workspace, args.request)
    if status is None:
        print(f"crm: no privacy request {args.request!r} in workspace {args.workspace!r}", file=sys.stderr)
        return 1
    print(json.dumps(status))
    return 0


def _profiles_index(args: argparse.Namespace) -> int:
    from crm_local.operations import index_profiles

    print(json.dumps({"indexed": index_profiles(args.stack)}))
    return 0


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone (add Z or +00:00)")
    return parsed


def _clock_advance(args: argparse.Namespace) -> int:
    from crm_local.clock_control import remote_advance

    answer = remote_advance(args.api, args.duration, wait_seconds=args.wait)
    print(answer.model_dump_json())
    if not answer.idle:
        print(f"crm: the stack was still busy {args.wait:g} s after the jump (it carries on; `crm clock now` shows "
              "the time)", file=sys.stderr)
        return 1
    return 0


def _clock_now(args: argparse.Namespace) -> int:
    from crm_local.clock_control import remote_now

    print(remote_now(args.api).model_dump_json(exclude_none=True))
    return 0


def _parameter(value: str) -> tuple[str, str]:
    name, equals, given = value.partition("=")
    if not (name and equals):
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=VALUE")
    return name, given


def _duration(value: str) -> timedelta:
    from crm_local.clock_control import parse_duration

    try:
        return parse_duration(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _wait_seconds(value: str) -> float:
    seconds = float(value)
    if not 0 <= seconds <= 600:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 600 seconds")
    return seconds


def _apply(args: argparse.Namespace) -> int:
    from crm_local.ascode import marketer_http, run_apply

    with marketer_http(args.api, args.key, args.stack, args.workspace) as http:
        return run_apply(http, args.directory, args.dry_run)


def _export(args: argparse.Namespace) -> int:
    from crm_local.ascode import marketer_http, run_export

    with marketer_http(args.api, args.key, args.stack, args.workspace) as http:
        return run_export(http, args.directory, args.managed_by)


def _flows_backtest(args: argparse.Namespace) -> int:
    from crm.clock import utc_now

    from crm_local.flow_backtest import on_stack, request_body, through_api

    body = request_body(args.flow, args.days)
    if args.api and args.until:
        raise ValueError("--until: the API's period ends now")
    if args.api:
        print(json.dumps(through_api(args.api, args.key, body)))
        return 0
    if not args.workspace:
        raise ValueError("--workspace: which workspace's history (or --api URL with that workspace's key)")
    print(on_stack(args.stack, args.workspace, body, args.until or utc_now()).model_dump_json())
    return 0


def _flows_test(args: argparse.Namespace) -> int:
    from crm_local.flow_backtest import flow_test

    for line in flow_test(args.file):
        print(line)
    return 0


def _predict_fit(args: argparse.Namespace) -> int:
    from crm.predictions.fit_report import describe, fit_report
    from crm.predictions.transactions_file import read_transactions

    if args.holdout_end is not None and args.calibration_end is None:
        raise ValueError("--holdout-end needs --calibration-end (where the holdout starts)")
    with args.transactions.open(newline="") as lines:
        histories = read_transactions(lines)
    report = fit_report(histories, calibration_end=args.calibration_end, holdout_end=args.holdout_end,
                        time_unit=args.time_unit)
    print(json.dumps(report, indent=2) if args.json else "\n".join(describe(report)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from crm.clock import utc_now

    from crm_local.reports import on_stack, render, through_api

    query = {name: value for name, value in (("from", args.from_), ("to", args.to), ("interval", args.interval))
             if value is not None}
    if args.api:
        view = through_api(args.api, args.key, args.name, query)
    elif args.workspace:
        view = on_stack(args.stack, args.workspace, args.name, query, utc_now())
    else:
        raise ValueError("--workspace: whose report (or --api URL with that workspace's key)")
    if args.png or args.svg:
        path = args.png or args.svg
        size = render(view["chart"], path, "png" if args.png else "svg")
        print(f"wrote {path} ({size:,} bytes)", file=sys.stderr)
    print(json.dumps(view["report"] if args.png or args.svg else view))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from crm_local.demo import run_demo

    return run_demo(shoppers=args.shoppers, seed=args.seed, out_dir=args.out_dir, serve=args.serve)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="crm", description=__doc__)
    root.add_argument("--stack", default="crm", help="stack name (CloudFormation stack, or the local one)")
    commands = root.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="run the whole stack on an embedded moto server")
    local.add_argument("--port", type=int, default=8000, help="HTTP port of the API (webhooks, customers)")
    local.add_argument("--aws-port", type=int, default=5001, help="port of the embedded AWS (moto) server")
    local.add_argument("--template", type=Path, default=None, help="template.yaml (default: this checkout's)")
    local.add_argument("--log-level", default="WARNING", help="function log level (Powertools)")
    local.add_argument("--sender", action="append", metavar="ADDRESS_OR_DOMAIN",
                       help="an SES sender identity to verify in the local SES (repeatable; store@crm-local.example "
                            "always is, and so is any sender a workspace's messaging settings name)")
    local.add_argument("--parameter-overrides", nargs="+", type=_parameter, metavar="NAME=VALUE",
                       help="template parameters, as sam deploy takes them (e.g. TableCapacity=provisioned)")
    local.set_defaults(run=_local)

    store = commands.add_parser("store", help="stores").add_subparsers(dest="store_command", required=True)
    add = store.add_parser("add", help="register a store; prints store_id, workspace_id, api_key and write_key "
                                       "as one JSON object")
    add.add_argument("--platform", required=True, choices=[p.value for p in Platform])
    add.add_argument("--domain", required=True)
    add.add_argument("--webhook-secret", required=True)
    add.add_argument("--api-token", help="the platform API's access token (required for bigcommerce)")
    add.add_argument("--workspace", help="add the store to this existing workspace (default: a new one); "
                                         "a new marketer key is issued for it")
    add.add_argument("--origin", action="append", metavar="URL",
                     help="a storefront origin allowed to send tracking events, e.g. https://shop.example "
                          "(repeatable; default: https://<domain>)")
    add.add_argument("--currency", help="the store's currency (ISO 4217, e.g. EUR): the first store of a workspace "
                                        "that names one sets its reporting currency (docs/currency.md)")
    add.set_defaults(run=_store_add)
    rotate = store.add_parser("rotate-secret", help="add a webhook secret; old and new both verify until "
                                                    "retire-secret (prints the new secret)")
    rotate.add_argument("--store", required=True, metavar="STORE_ID")
    rotate.add_argument("--webhook-secret", help="the platform's new secret (default: a new random one, for "
                                                 "platforms where you choose it)")
    rotate.set_defaults(run=_store_rotate_secret)
    retire = store.add_parser("retire-secret", help="keep only the newest webhook secret (older ones stop "
                                                    "verifying within a minute)")
    retire.add_argument("--store", required=True, metavar="STORE_ID")
    retire.set_defaults(run=_store_retire_secret)
    store.add_parser("migrate-secrets", help="move secrets of stores registered before Secrets Manager out of "
                                             "the table, and give older API keys ids (once, after upgrading)"
                     ).set_defaults(run=_store_migrate_secrets)

    api_keys = commands.add_parser("keys", help="marketer API keys").add_subparsers(dest="keys_command",
                                                                                     required=True)
    for name, run_keys, says in (("list", _keys_list, "one JSON line per key: id, state, times (never the key)"),
                                 ("create", _keys_create, "a new key, shown once"),
                                 ("revoke", _keys_revoke, "refuse the key from the next request on")):
        keys_command = api_keys.add_parser(name, help=says)
        keys_command.add_argument("--workspace", required=True)
        keys_command.set_defaults(run=run_keys)
        if name == "create":
            keys_command.add_argument("--expires-at", type=_aware, help="ISO 8601 with zone (default: never)")
        if name == "revoke":
            keys_command.add_argument("--key-id", required=True, metavar="KEY_ID")

    users = commands.add_parser("users", help="the console's users").add_subparsers(dest="users_command",
                                                                                     required=True)
    inviting = users.add_parser("add", help="invite a user into a workspace's console; prints the invitation link "
                                            "(valid 7 days: the user chooses a password with it)")
    inviting.add_argument("--workspace", required=True)
    inviting.add_argument("--email", required=True)
    inviting.add_argument("--role", choices=("viewer", "editor"), default="viewer",
                          help="a viewer sees everything and changes nothing (default viewer)")
    inviting.add_argument("--api", metavar="URL", help="the API the link points into (default: the stack's ApiUrl; "
                                                       "http://127.0.0.1:8000 for a local stack)")
    inviting.set_defaults(run=_users_add)

    dlq = commands.add_parser("dlq", help="the ingest dead-letter queue").add_subparsers(dest="dlq_command",
                                                                                          required=True)
    listing = dlq.add_parser("list", help="show parked deliveries and why")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=_dlq_list)
    dlq.add_parser("redrive", help="send parked deliveries back to the ingest queue").set_defaults(run=_dlq_redrive)

    segments = commands.add_parser("segments", help="segments").add_subparsers(dest="segments_command",
                                                                              required=True)
    run = segments.add_parser("run", help="recompute every segment now, as the daily schedule does (the stack's "
                                          "workers carry it out); prints the run id of each workspace")
    run.add_argument("--workspace", help="only this workspace")
    run.set_defaults(run=_segments_run)

    privacy = commands.add_parser("privacy", help="privacy requests (erasure, data export)").add_subparsers(
        dest="privacy_command", required=True)
    status = privacy.add_parser("status", help="how far a request has got: stage, runs, archive objects scanned "
                                               "and changed, profiles erased (one JSON object)")
    status.add_argument("--workspace", required=True)
    status.add_argument("--request", required=True,
                        help="the request id (Shopify: the data request id, else the webhook delivery id)")
    status.set_defaults(run=_privacy_status)

    profiles = commands.add_parser("profiles", help="profiles").add_subparsers(dest="profiles_command",
                                                                              required=True)
    profiles.add_parser("index", help="add the workspace index's attributes to profiles written before it "
                                      "(once after upgrading; idempotent); prints how many").set_defaults(
        run=_profiles_index)

    replay = commands.add_parser("replay", help="send archived deliveries through ingestion again (idempotent)")
    replay.add_argument("--store", help="only this store_id")
    replay.add_argument("--since", type=_aware, help="received at or after (ISO 8601 with zone)")
    replay.add_argument("--until", type=_aware, help="received before (ISO 8601 with zone)")
    replay.set_defaults(run=_replay)

    imports = commands.add_parser("import", help="load history from the platform's own CSV export (idempotent)")
    imports.add_argument("--store", required=True, metavar="STORE_DOMAIN", help="the store's domain, as registered")
    imports.add_argument("--platform", required=True, choices=[Platform.SHOPIFY.value])
    exported = imports.add_mutually_exclusive_group(required=True)
    exported.add_argument("--orders", type=Path, metavar="CSV", help="Shopify admin: Orders -> Export")
    exported.add_argument("--customers", type=Path, metavar="CSV", help="Shopify admin: Customers -> Export")
    imports.add_argument("--dry-run", action="store_true", help="parse and report; write nothing")
    imports.set_defaults(run=_import)

    clock = commands.add_parser("clock", help="a running `crm local`'s clock (only the local runtime has one to "
                                              "move)").add_subparsers(dest="clock_command", required=True)
    advance = clock.add_parser("advance", help="fast-forward it: what falls due fires (flow waits, daily segment "
                                               "runs), then waits until the stack is idle; prints the new time as "
                                               "JSON")
    advance.add_argument("duration", type=_duration, metavar="DURATION",
                         help="4h, 30m, 2d, 1w (combinable: 1d12h) or ISO 8601 (PT4H)")
    advance.add_argument("--wait", type=_wait_seconds, default=120.0, metavar="SECONDS",
                         help="how long to wait for the stack to go idle (default 120; at most 600)")
    now = clock.add_parser("now", help="its time, as JSON")
    for command, run_clock in ((advance, _clock_advance), (now, _clock_now)):
        command.add_argument("--api", default="http://127.0.0.1:8000", metavar="URL",
                             help="the local runtime's API (default http://127.0.0.1:8000)")
        command.set_defaults(run=run_clock)

    as_code = commands.add_parser("apply", help="make the workspace's segments, flows and templates what a directory "
                                                "of YAML/JSON files says (docs/as-code.md): prints the plan, then "
                                                "applies it")
    as_code.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    exporting = commands.add_parser("export", help="write the workspace's segments, flows and templates as files in "
                                                   "the layout `crm apply` reads")
    exporting.add_argument("--managed-by", metavar="LABEL",
                           help="only the definitions an apply with this managed_by label made (and a crm.yaml "
                                "naming it); default: every custom definition and every built-in the workspace "
                                "saved")
    for command, run_as_code in ((as_code, _apply), (exporting, _export)):
        command.add_argument("directory", type=Path, metavar="DIR")
        command.add_argument("--api", default="http://127.0.0.1:8000", metavar="URL",
                             help="the marketer API (API Gateway's URL; default the local runtime's)")
        command.add_argument("--key", help="a marketer API key (default: $CRM_API_KEY)")
        command.add_argument("--workspace", help="without a key: issue one for this workspace for this command, "
                                                 "revoked at its end (needs AWS credentials for the stack)")
        command.set_defaults(run=run_as_code)

    flows = commands.add_parser("flows", help="flows: try one on history before it goes live").add_subparsers(
        dest="flows_command", required=True)
    backtest = flows.add_parser("backtest", help="what a flow would have done over the workspace's last days, "
                                                 "nothing sent (docs/backtest.md); prints the report as JSON")
    backtest.add_argument("flow", metavar="FLOW", help="a JSON or YAML file holding a flow definition, or a flow id")
    backtest.add_argument("--days", type=int, default=30, help="how many days back from now (1 to 90; default 30)")
    backtest.add_argument("--workspace", help="whose history (read from the stack's table)")
    backtest.add_argument("--until", type=_aware, help="the period's end (ISO 8601 with zone; default now; not "
                                                       "with --api, whose period ends now)")
    backtest.add_argument("--api", metavar="URL", help="ask the marketer API instead (POST /flows/backtest)")
    backtest.add_argument("--key", help="the workspace's API key for --api (default: $CRM_API_KEY)")
    backtest.set_defaults(run=_flows_backtest)
    tested = flows.add_parser("test", help="run a flow against a scripted timeline (YAML: flow, profile, events "
                                           "of {at, event}) and print what would be sent when; exit 2 on an "
                                           "invalid file")
    tested.add_argument("file", type=Path, metavar="FILE")
    tested.set_defaults(run=_flows_test)

    predicting = commands.add_parser("predict", help="buy-till-you-die models (docs/predictions.md)").add_subparsers(
        dest="predict_command", required=True)
    fitting = predicting.add_parser("fit", help="fit BG/NBD, MBG/NBD and Gamma-Gamma on any store's history and "
                                                "print their parameters; with a holdout, expected vs actual")
    fitting.add_argument("--transactions", type=Path, required=True, metavar="FILE.csv",
                         help="header customer_id,date,amount; ISO dates; one line per order")
    fitting.add_argument("--calibration-end", type=date.fromisoformat, metavar="DATE",
                         help="fit on transactions up to this day (default: the last transaction's day)")
    fitting.add_argument("--holdout-end", type=date.fromisoformat, metavar="DATE",
                         help="compare expected with actual repeat purchases after the calibration up to this day")
    fitting.add_argument("--time-unit", choices=("weeks", "days"), default="weeks",
                         help="the unit of recency, age and of the parameters (default weeks, as the papers)")
    fitting.add_argument("--json", action="store_true", help="print the report as JSON")
    fitting.set_defaults(run=_predict_fit)

    report = commands.add_parser("report", help="a report of the workspace (docs/reports.md) as JSON, its chart "
                                                "drawn to PNG or SVG")
    report.add_argument("name", metavar="NAME", help="revenue, repeat_rate, cohorts, rfm, channels, abandonment or "
                                                     "predictions")
    report.add_argument("--from", dest="from_", metavar="DAY", help="the first UTC day (default: a year before --to)")
    report.add_argument("--to", metavar="DAY", help="the last UTC day, included (default: today)")
    report.add_argument("--interval", choices=("day", "week", "month"), help="the buckets over time")
    drawn = report.add_mutually_exclusive_group()
    drawn.add_argument("--png", type=Path, metavar="FILE", help="draw the chart to FILE as PNG (prints the data only)")
    drawn.add_argument("--svg", type=Path, metavar="FILE", help="draw the chart to FILE as SVG (prints the data only)")
    report.add_argument("--workspace", help="whose report (read from the stack's table)")
    report.add_argument("--api", metavar="URL", help="ask the marketer API instead (GET /reports/NAME)")
    report.add_argument("--key", help="the workspace's API key for --api (default: $CRM_API_KEY)")
    report.set_defaults(run=_report)

    demo = commands.add_parser("demo", help="boot the local stack, simulate a Shopify and a WooCommerce store "
                                            "over months, print a report and check it against the simulation")
    demo.add_argument("--shoppers", type=int, default=250,
                      help="simulated shoppers, and a fifth as many anonymous visitors (default 250: about three "
                           "minutes on two cores; the stack runs in one Python process)")
    demo.add_argument("--seed", type=int, default=7, help="the simulation's seed: the same seed, the same run")
    demo.add_argument("--out-dir", type=Path, default=Path("demo-output"),
                      help="where the demo writes its segment export (default demo-output/ in the current "
                           "directory, which the repository's .gitignore leaves out)")
    demo.add_argument("--serve", action="store_true",
                      help="after the report, keep the demo's stack up for a look at the console until Ctrl-C")
    demo.set_defaults(run=_demo)
    return root


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _local_endpoint() -> bool:
    host = urlsplit(os.environ.get("AWS_ENDPOINT_URL", "")).hostname or ""
    return host in LOOPBACK_HOSTS or host == "::1"


def _local_stack_defaults() -> None:
    """Against the embedded stack (AWS_ENDPOINT_URL on loopback) no real credentials exist or are needed."""
    if _local_endpoint():
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _local_stack_defaults()
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, KeyError, OSError) as error:
        print(f"crm: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
