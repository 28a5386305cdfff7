"""`make bench`: cold starts. The layer's size, each function's import time, a cold webhook's time to answer.

The layer as `sam build` made it before issue 12 (BuildMethod python3.12: shared/requirements.txt with chalice,
whose install brings its command line: pip, setuptools, wheel, inquirer, blessed, click, botocore, PyYAML) is
rebuilt here beside today's (shared/Makefile), both with pip for Lambda's python3.12 on arm64: files, bytes,
and the zip Lambda downloads.

Import times and the cold webhook run in fresh interpreters (`python -S`: no site-packages) that see only
what a Lambda container sees: the function's code, a layer built for this host the same two ways, and boto3
(Lambda's runtime carries it). Three set-ups, in the same run:

- before: the code of BASELINE_COMMIT (issue 12's starting point, from git) on the python3.12-method layer,
  which has no bytecode (so every cold start compiles every module it imports: /opt is read-only);
- today without bytecode: today's code on shared/Makefile's layer with its __pycache__ removed;
- today: today's code on shared/Makefile's layer as built (bytecode compiled at build time).

The cold webhook: moto's server in this process with the stack provisioned from template.yaml and a Shopify
store registered; the child process imports the webhooks function and answers signed deliveries (the first
is the cold answer: import + first invocation, clients and connections included; the next ones warm).

Times are wall times on this (shared, 2-core) machine with a Python of the host: compare columns within one
run. Run with the python3.12 that `sam build` needs on PATH (or --python) to build the target layer's
bytecode with the right interpreter.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm import config, wiring
from crm.adapters import clients
from crm.adapters.stores import DynamoStoreDirectory
from crm.clock import utc_now
from crm.models.stores import Platform
from crm.stores import register_store
from crm_local import moto_patches
from crm_local.provision import Provisioned, provision
from crm_local.template import load_stack
from crm_local.wire import shopify_fixture, shopify_headers
from figures import record
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
# What does not change from run to run (the before layers: a fixed commit's code and requirements; Lambda's
# boto3) is built once per interpreter and kept here (gitignored; delete it to build afresh). Today's layers are
# always built: they are what is measured.
CACHE = ROOT / "bench" / ".cache" / "cold_start"
BASELINE_COMMIT = "0ccbb87"  # issue 12's starting point: the layer built by BuildMethod python3.12
# shared/requirements.txt at BASELINE_COMMIT: the python3.12 build method installs these with all they require.
BASELINE_REQUIREMENTS = """\
aws-lambda-powertools>=3.37,<4
pydantic>=2.10,<3
chalice>=1.34,<2
phonenumbers>=9
jinja2>=3.1.6,<4
css-inline>=0.23,<0.24
tzdata>=2025.2
"""
LAMBDA_WHEELS = ["--only-binary=:all:", "--implementation", "cp", "--python-version", "3.12",
                 "--platform", "manylinux2014_aarch64", "--platform", "manylinux_2_24_aarch64",
                 "--platform", "manylinux_2_28_aarch64"]
REGION = "us-east-1"
DOMAIN = "cold-start.myshopify.com"
SECRET = "cold-start-webhook-secret"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing", "AWS_CONFIG_FILE": os.devnull,
                    "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}
SHOPIFY_DEADLINE_S = 5.0

IMPORT_ONLY = """\
import sys, time
started = time.perf_counter()
import app
print(time.perf_counter() - started)
"""

# The Lambda context the handlers read (function name and request id for the logs, remaining time).
ANSWER = """\
import json, sys, time
started = time.perf_counter()
import app
imported = time.perf_counter()

class Context:
    function_name = "WebhooksFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WebhooksFunction"
    memory_limit_in_mb = 512
    aws_request_id = "cold-start"
    log_group_name = "/aws/lambda/WebhooksFunction"
    log_stream_name = "cold-start"

    def get_remaining_time_in_millis(self):
        return 10_000

answers = []
for event in json.loads(open(sys.argv[1]).read()):
    sent = time.perf_counter()
    response = app.app(event, Context())
    answers.append([response["statusCode"], time.perf_counter() - sent])
with open(sys.argv[2], "w") as out:
    json.dump({"import": imported - started, "answers": answers}, out)
"""


@dataclass(frozen=True)
class Layer:
    """A layer's python/ directory and its measure."""

    path: Path
    files: int
    bytes: int
    zipped: int


@dataclass(frozen=True)
class SetUp:
    """What a fresh interpreter sees: the functions' code and a layer."""

    label: str
    functions: Path
    layer: Path


def run(*command: str | Path) -> None:
    # the bench's temp directories are its own: pip's warning about installing as root is noise here
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}
    subprocess.run([str(c) for c in command], check=True, env=env, stdout=subprocess.DEVNULL)


def pip_install(python: str, target: Path, requirements: str, *options: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    listed = target.parent / "requirements.txt"
    listed.write_text(requirements)
    run(python, "-m", "pip", "install", "--quiet", "--no-compile", *options, "--target", target, "-r", listed)


def measure(path: Path) -> Layer:
    files = [p for p in path.rglob("*") if p.is_file()]
    archive = path.parent / f"{path.parent.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for file in files:
            out.write(file, Path("python") / file.relative_to(path))
    return Layer(path, len(files), sum(p.stat().st_size for p in files), archive.stat().st_size)


def kept(python: str, target: Path, build: Callable[[Path], None], *key: str) -> None:
    """``build(target)``, or a copy of what it built before for the same interpreter and key."""
    digest = hashlib.sha256("\0".join((python_version(python), python, *key)).encode()).hexdigest()[:16]
    cached = CACHE / digest
    if not cached.is_dir():
        building = CACHE / f"{digest}.partial"
        shutil.rmtree(building, ignore_errors=True)
        build(building)
        building.rename(cached)
    shutil.copytree(cached, target, symlinks=True)


def baseline_layer(python: str, work: Path, crm: Path, *wheels: str) -> Layer:
    """What BuildMethod python3.12 made: the requirements with everything they require, and shared/crm."""
    layer = work / "python"

    def build(target: Path) -> None:
        pip_install(python, target, BASELINE_REQUIREMENTS, *wheels)
        shutil.copytree(crm, target / "crm")

    # crm is BASELINE_COMMIT's, or today's where the clone has no history: not the same layer
    code = "today's crm" if crm == ROOT / "shared" / "crm" else BASELINE_COMMIT
    kept(python, layer, build, "baseline layer", code, BASELINE_REQUIREMENTS, *wheels)
    return measure(layer)


def makefile_layer(python: str, work: Path, *wheels: str) -> Layer:
    """What `sam build` makes today: shared/Makefile's build-CrmLayer target."""
    work.mkdir(parents=True)
    run("make", "--silent", "-C", work, "-f", ROOT / "shared" / "Makefile", "build-CrmLayer",
        f"ARTIFACTS_DIR={work}", f"PYTHON={python}", "TARGET_WHEELS=" + " ".join(wheels))
    return measure(work / "python")


def without_bytecode(layer: Path, work: Path) -> Path:
    copy = work / "python"
    shutil.copytree(layer, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def baseline_sources(work: Path) -> Path | None:
    """functions/ and shared/ as they were at BASELINE_COMMIT (None without the git history)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_COMMIT, "functions", "shared"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        return None
    work.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
    return work


def host_python(requested: str | None) -> str:
    """The python3.12 sam build needs, if this host has one; else this interpreter (and the report says so)."""
    candidates = [requested] if requested else [shutil.which("python3.12"),
                                                *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    if requested:
        raise SystemExit(f"{requested} does not run")
    return sys.executable


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()


def fresh(python: str, code_dir: Path, layer: Path, runtime: Path, environment: dict[str, str],
          code: str, *args: str) -> str:
    """Run code in a new interpreter that sees the function, the layer and Lambda's runtime, nothing else."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join(str(p) for p in (code_dir, layer, runtime)), **environment}
    done = subprocess.run([python, "-S", "-c", code, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{code_dir.name} on {layer}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def aws_environment(endpoint: str) -> dict[str, str]:
    return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


def code_dirs(provisioned: Provisioned) -> dict[str, tuple[list[str], dict[str, str]]]:
    """functions/<dir> -> the functions built from it and the first one's environment."""
    found: dict[str, tuple[list[str], dict[str, str]]] = {}
    for name, spec in sorted(provisioned.functions.items()):
        directory = Path(spec.code_path).name
        found.setdefault(directory, ([], spec.environment))[0].append(name)
    return found


def import_times(python: str, setups: list[SetUp], runtime: Path, provisioned: Provisioned, endpoint: str,
                 runs: int) -> dict[str, dict[str, float]]:
    """code dir -> set-up label -> median import time (s); set-ups interleaved so load drifts hit all alike."""
    times: dict[str, dict[str, list[float]]] = {}
    for directory, (_, environment) in code_dirs(provisioned).items():
        if not all((setup.functions / directory).is_dir() for setup in setups):
            # A function newer than a set-up (predictions, with its own science layer) has nothing to compare.
            print(f"  {directory}: not timed (not in every set-up compared)")
            continue
        env = {**aws_environment(endpoint), **environment}
        for _ in range(runs):
            for setup in setups:
                seconds = float(fresh(python, setup.functions / directory, setup.layer, runtime, env, IMPORT_ONLY))
                times.setdefault(directory, {}).setdefault(setup.label, []).append(seconds)
    return {d: {label: statistics.median(values) for label, values in by.items()} for d, by in times.items()}


def webhook_events(count: int) -> list[dict[str, Any]]:
    """Signed orders/create deliveries in API Gateway's proxy event shape (what the Chalice app reads)."""
    events = []
    for _ in range(count):
        body = shopify_fixture("orders/create")
        order = json.loads(body)
        order["id"] = uuid.uuid4().int % 10**12
        body = json.dumps(order).encode()
        headers = shopify_headers(body, secret=SECRET, topic="orders/create", domain=DOMAIN,
                                  delivery_id=str(uuid.uuid4()),
                                  triggered_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        events.append({
            "resource": "/webhooks/{platform}", "path": "/webhooks/shopify", "httpMethod": "POST",
            "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": {"platform": "shopify"}, "stageVariables": None,
            "requestContext": {"resourcePath": "/webhooks/{platform}", "httpMethod": "POST", "stage": "api",
                               "path": "/api/webhooks/shopify", "requestId": str(uuid.uuid4()),
                               "identity": {"sourceIp": "127.0.0.1"}},
            "body": body.decode(), "isBase64Encoded": False,
        })
    return events


def cold_webhooks(python: str, setups: list[SetUp], runtime: Path, provisioned: Provisioned, endpoint: str,
                  work: Path, runs: int, deliveries: int) -> dict[str, list[dict[str, Any]]]:
    """set-up label -> one record per cold container: import time and each delivery's (status, seconds)."""
    environment = {**aws_environment(endpoint), **provisioned.functions["WebhooksFunction"].environment}
    results: dict[str, list[dict[str, Any]]] = {}
    for attempt in range(runs):
        for setup in setups:
            events = work / f"events-{attempt}-{setup.label}.json"
            events.write_text(json.dumps(webhook_events(deliveries)))
            out = work / f"answers-{attempt}-{setup.label}.json"
            started = time.perf_counter()
            fresh(python, setup.functions / "webhooks", setup.layer, runtime, environment, ANSWER, str(events),
                  str(out))
            record = json.loads(out.read_text())
            record["process"] = time.perf_counter() - started
            results.setdefault(setup.label, []).append(record)
    return results


def start_stack() -> tuple[ThreadedMotoServer, str, Provisioned]:
    moto_patches.install()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(aws_environment(endpoint))
    config.reset()
    wiring.reset()
    clients.reset()
    provisioned = provision(load_stack(TEMPLATE, REGION), "cold", REGION)
    register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, SECRET,
                   utc_now())
    return server, endpoint, provisioned


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(line.format(*r) for r in [header, ["-" * w for w in widths], *rows])


def largest(layer: Path, count: int = 8) -> str:
    sizes = {child.name: sum(p.stat().st_size for p in child.rglob("*") if p.is_file()) if child.is_dir()
             else child.stat().st_size for child in layer.iterdir() if not child.name.endswith(".dist-info")}
    return ", ".join(f"{name} {mb(size)}" for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:count])


def print_layers(before: Layer, after: Layer, python: str) -> None:
    print(f"1. The layer for Lambda's python3.12 on arm64 (bytecode by {python_version(python)})\n")
    print(table(["layer", "files", "unzipped", "zip"], [
        [f"before: BuildMethod python3.12 ({BASELINE_COMMIT})", f"{before.files:,}", mb(before.bytes),
         mb(before.zipped)],
        ["today: BuildMethod makefile (shared/Makefile)", f"{after.files:,}", mb(after.bytes), mb(after.zipped)],
        ["today / before", "", f"{after.bytes / before.bytes:.2f}x", f"{after.zipped / before.zipped:.2f}x"],
    ]))
    gone = sorted({p.name.split("-")[0] for p in before.path.glob("*.dist-info")}
                  - {p.name.split("-")[0] for p in after.path.glob("*.dist-info")})
    print(f"\n  left out: {', '.join(gone)}; chalice's CLI (chalice/app.py and __init__.py stay); "
          "phonenumbers' geodata and carrierdata")
    print(f"  largest, before: {largest(before.path)}")
    print(f"  largest, today:  {largest(after.path)}")


def print_imports(times: dict[str, dict[str, float]], labels: list[str], provisioned: Provisioned) -> None:
    print("\n2. Import time of each function's module in a fresh interpreter (median, seconds)\n")
    names = code_dirs(provisioned)
    rows = [[directory, ", ".join(n.removesuffix("Function") for n in names[directory][0]),
             *(f"{by[label]:.3f}" for label in labels)] for directory, by in times.items()]
    rows.append(["median", "", *(f"{statistics.median(by[label] for by in times.values()):.3f}" for label in labels)])
    print(table(["code", "functions", *labels], rows))


def print_webhooks(results: dict[str, list[dict[str, Any]]], labels: list[str]) -> None:
    print("\n3. A cold webhook (orders/create, signed) in a fresh container: seconds, median of the containers\n")
    rows = []
    for label in labels:
        records = results[label]
        statuses = sorted({status for r in records for status, _ in r["answers"]})
        cold = statistics.median(r["import"] + r["answers"][0][1] for r in records)
        warm = statistics.median(seconds for r in records for _, seconds in r["answers"][1:])
        rows.append([label, f"{statistics.median(r['import'] for r in records):.3f}",
                     f"{statistics.median(r['answers'][0][1] for r in records):.3f}", f"{cold:.3f}",
                     f"{warm:.3f}", f"{statistics.median(r['process'] for r in records):.3f}",
                     ",".join(map(str, statuses))])
    print(table(["set-up", "import", "1st invocation", "cold answer", "warm answer", "process", "status"], rows))
    print(f"\n  cold answer = import + first invocation (Lambda's init and the first request's clients and "
          f"connections); Shopify waits {SHOPIFY_DEADLINE_S:.0f} s. 'process' adds the interpreter's own start.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--python", help="the python3.12 to build the layers with (default: one on PATH)")
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters per function and set-up")
    parser.add_argument("--deliveries", type=int, default=4, help="webhook deliveries per cold container")
    args = parser.parse_args()
    started = time.perf_counter()
    python = host_python(args.python)
    print(f"cold_start: layers and fresh interpreters with {python} (Python {python_version(python)}); "
          f"{args.runs} runs each\n")
    with tempfile.TemporaryDirectory(prefix="cold-start-") as temporary:
        work = Path(temporary)
        baseline = baseline_sources(work / "baseline")
        crm_before = (baseline or ROOT) / "shared" / "crm"
        before = baseline_layer(python, work / "target-before", crm_before, *LAMBDA_WHEELS)
        after = makefile_layer(python, work / "target-after", *LAMBDA_WHEELS)
        print_layers(before, after, python)

        runtime = work / "runtime"  # Lambda's runtime carries boto3, compiled

        def lambda_runtime(target: Path) -> None:
            pip_install(python, target, "boto3\n")
            run(python, "-m", "compileall", "-q", "-j", "0", target)

        kept(python, runtime, lambda_runtime, "runtime", "boto3")
        host_before = baseline_layer(python, work / "host-before", crm_before).path
        host_after = makefile_layer(python, work / "host-after").path
        setups = [SetUp("today, no bytecode", ROOT / "functions", without_bytecode(host_after, work / "host-plain")),
                  SetUp("today", ROOT / "functions", host_after)]
        if baseline is not None:
            setups.insert(0, SetUp(f"before ({BASELINE_COMMIT})", baseline / "functions", host_before))
        else:
            print(f"\n  (no git history: the before set-up, {BASELINE_COMMIT}'s code, is left out)")
        labels = [s.label for s in setups]
        server, endpoint, provisioned = start_stack()
        try:
            times = import_times(python, setups, runtime, provisioned, endpoint, args.runs)
            print_imports(times, labels, provisioned)
            answers = cold_webhooks(python, setups, runtime, provisioned, endpoint, work, args.runs,
                                    args.deliveries)
            print_webhooks(answers, labels)
        finally:
            server.stop()
    print(f"\n(cold_start ran in {time.perf_counter() - started:.0f} s)")
    record("cold_start", {
        "layer_bytes": {"before": before.bytes, "after": after.bytes},
        "layer_zipped": {"before": before.zipped, "after": after.zipped},
        "import_s_median": {label: statistics.median(by[label] for by in times.values()) for label in labels},
        "cold_webhook_s": {label: statistics.median(r["import"] + r["answers"][0][1] for r in answers[label])
                           for label in labels}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
