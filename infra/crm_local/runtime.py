"""`crm local`: moto's server, the template's resources in it, the HTTP functions served, the pollers running."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from crm import clock, config, wiring
from crm.adapters import clients
from moto.scheduler.models import scheduler_backends

from crm_local import doorbell, mailbox_simulator, moto_outbound, moto_patches, scheduler, ses_tracking, sms_status
from crm_local.aws_server import AwsServer
from crm_local.clock_control import clock_routes
from crm_local.http import api_server
from crm_local.lambdas import Function, function_arn
from crm_local.outbound import Outbox
from crm_local.pollers import Poller, poller_for
from crm_local.provision import ACCOUNT_ID, Provisioned, provision
from crm_local.scheduler import Fired, ScheduleBook, ScheduleRunner, Targets
from crm_local.schedules import ScheduleTimer
from crm_local.template import load_stack
from crm_local.workers import CONCURRENCY, Containers, InWorker, Zygote

log = logging.getLogger("crm.local")

# A sender verified in the local SES from the start (any other one ends verified once a workspace's messaging
# settings name it, or with `crm local --sender`): local sends need no set-up.
DEFAULT_SENDER = "store@crm-local.example"
IDLE_ROUNDS, IDLE_ROUND_SECONDS = 2, 0.02  # wait_idle's quiet rounds (was 3 x 0.1 s, while pollers polled)
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}


def function_environment(provisioned: Provisioned, log_level: str) -> dict[str, str]:
    """The functions' environments merged: they share this process, so a conflict is an error."""
    merged: dict[str, str] = {}
    for spec in provisioned.functions.values():
        for name, value in spec.environment.items():
            if merged.setdefault(name, value) != value:
                raise ValueError(f"functions disagree on {name} ({merged[name]!r} vs {value!r}); "
                                 "the local runtime runs them in one process")
    merged["LOG_LEVEL"] = log_level
    merged["POWERTOOLS_LOG_LEVEL"] = log_level
    return merged


def ensure_free(host: str, port: int) -> None:
    """Fail now with a clear error: moto's server thread would otherwise fail silently on a taken port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError:
            raise OSError(f"port {port} on {host} is already in use") from None


@dataclass
class LocalRuntime:
    port: int
    aws_port: int
    host: str = "127.0.0.1"
    stack_name: str = "crm"
    region: str = "us-east-1"
    template: Path | None = None
    log_level: str = "WARNING"
    provisioned: Provisioned | None = None
    pollers: list[Poller] = field(default_factory=list)
    schedules: dict[str, ScheduleTimer] = field(default_factory=dict)
    scheduler: ScheduleRunner | None = None  # EventBridge Scheduler's schedules (moto stores, this fires)
    senders: tuple[str, ...] = (DEFAULT_SENDER,)  # SES identities (addresses or domains) verified at start
    # Each function in a worker process of its own (crm_local.workers); False loads them all in this process, for
    # a caller that instruments what they do (bench/flows.py meters the flows function's clients).
    workers: bool = True
    processes: list[Containers] = field(default_factory=list)
    # Functions whose SQS source is polled this many batches at once, as Lambda scales a queue's consumers out
    # (with workers; the demo works the segment runs' shares side by side); every other source one at a time.
    scaled_out: dict[str, int] = field(default_factory=dict)
    # The template's parameters that differ from their defaults (`crm local --parameter-overrides`).
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        for port in (self.aws_port, self.port):
            ensure_free(self.host, port)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        stack = load_stack(self.template, self.region)
        if self.workers:  # its imports overlap moto's start and the provisioning
            handlers = {name: stack.resources.get(name, {}).get("Properties", {}).get("Handler")
                        for name in stack.code_paths}
            self._zygote = Zygote((str(stack.code_paths[name]), handler)
                                  for name, handler in handlers.items() if handler)
        moto_patches.install()
        doorbell.install()
        moto_outbound.install()
        scheduler.install()
        self._moto = AwsServer(self.host, self.aws_port)
        self._moto.start()
        os.environ.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=self.aws_endpoint, AWS_DEFAULT_REGION=self.region,
                          AWS_REGION=self.region)
        self.provisioned = provision(stack, self.stack_name, self.region, self.parameters)
        self.verify_senders(*self.senders)
        mailbox_simulator.install(self.provisioned)
        ses_tracking.install(self.api_url)
        os.environ.update(function_environment(self.provisioned, self.log_level))
        os.environ["PUBLIC_API_URL"] = self.api_url  # the links in emails point at the local API
        os.environ["FIT_RECHECK_SECONDS"] = "0"  # a fit waiting for the segment run looks again at once
        config.reset()
        wiring.reset()
        clients.reset()
        functions = self._functions()
        sms_status.install(self.provisioned, {name: function.invoke for name, function in functions.items()})
        self.pollers = [poller_for(name if n == 0 else f"{name}-{n}", functions[m["Function"]], m, self.region)
                        for name, m in self.provisioned.event_source_mappings.items()
                        for n in range(self._batches_at_once(m))]
        self.schedules = {rule: ScheduleTimer(rule, functions[name], expression, arn, self.region)
                          for rule, (expression, arn, name) in self.provisioned.schedules.items()}
        self.scheduler = ScheduleRunner(ScheduleBook(), Targets(self.region, {
            function.arn: function.invoke for function in functions.values()}))
        scheduler.listen(scheduler_backends[ACCOUNT_ID][self.region], self.scheduler.book)
        routes = [(method, path, functions[name]) for method, path, name in self.provisioned.routes]
        self._http = api_server(self.host, self.port, routes, local_routes=clock_routes(self),
                                prefix_routes=ses_tracking.routes())
        self._http_thread = threading.Thread(target=self._http.serve_forever, name="api", daemon=True)
        self._http_thread.start()
        for poller in self.pollers:
            doorbell.listen(doorbell.source_of(poller.arn), poller.wake)
            poller.start()
        for timer in self.schedules.values():
            timer.start()
        self.scheduler.start()

    def _batches_at_once(self, mapping: dict[str, Any]) -> int:
        sqs = str(mapping["EventSourceArn"]).startswith("arn:aws:sqs:")
        return max(1, self.scaled_out.get(mapping["Function"], 1)) if sqs and self.workers else 1

    def _functions(self) -> dict[str, Function]:
        assert self.provisioned is not None
        specs = self.provisioned.functions
        if not self.workers:
            return {name: Function(spec, self.region) for name, spec in specs.items()}
        # The API's functions scale out (concurrent requests); the others keep one worker, so that what their
        # pollers, schedules and hooks invoke runs one at a time, as the demo's verified figures were measured.
        served = {name for _, _, name in self.provisioned.routes}
        self.processes = [Containers(self._zygote, spec, function_arn(spec, self.region), os.environ,
                                     limit=max(CONCURRENCY if name in served else 1, self.scaled_out.get(name, 1)))
                          for name, spec in specs.items()]
        for process in self.processes:  # they load their handlers side by side
            process.start()
        for process in self.processes:
            process.ready()
        return {name: Function(process.spec, self.region, handler=InWorker(process))
                for name, process in zip(specs, self.processes, strict=True)}

    def verify_senders(self, *identities: str) -> None:
        """Email addresses or domains SES may send from, verified (as if their owner had confirmed them)."""
        ses: Any = boto3.client("sesv2", region_name=self.region)
        for identity in identities:
            with contextlib.suppress(ses.exceptions.AlreadyExistsException):
                ses.create_email_identity(EmailIdentity=identity)

    def outbox(self) -> Outbox:
        """The emails and SMS sent so far (read back from moto)."""
        return Outbox(self.aws_endpoint)

    def fire_schedules(self) -> dict[str, Any]:
        """Fire every schedule of the template now (what EventBridge does at their times); their answers."""
        return {rule: timer.fire() for rule, timer in self.schedules.items()}

    def fire_due(self) -> list[Fired]:
        """Fire what the clock has passed: the template's scheduled rules (once each, however late) and the
        Scheduler's schedules (in due order); the schedules fired."""
        for timer in self.schedules.values():
            timer.fire_if_due()
        return self.scheduler.fire_due() if self.scheduler else []

    def advance_clock(self, by: timedelta) -> list[Fired]:
        """Fast-forward the runtime's clock: functions see the later time, and what fell due fires now (the
        schedules fired; their work is still under way: ``wait_idle``)."""
        if by < timedelta(0):
            raise ValueError("the clock only moves forward (schedules already fired would not fire again)")
        if self.scheduler is None:
            clock.shift(by)
            return self.fire_due()
        fired = self.scheduler.fire_after(lambda: clock.shift(by))
        return fired + self.fire_due()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until every queue is drained, every poller found nothing since its source last got work (the
        doorbell marks it busy as the work arrives), and nothing is due: what falls due meanwhile (a zero wait
        scheduled by a flow step) is fired here. Two quiet rounds in a row, for what no doorbell rings."""
        deadline = time.monotonic() + timeout
        quiet_rounds = 0
        while time.monotonic() < deadline:
            fired = self.fire_due()
            busy = bool(fired) or any(not p.idle.is_set() or p.pending() for p in self.pollers) or (
                self.scheduler is not None and self.scheduler.busy()) or sms_status.busy()
            quiet_rounds = 0 if busy else quiet_rounds + 1
            if quiet_rounds >= IDLE_ROUNDS:
                return True
            time.sleep(IDLE_ROUND_SECONDS)
        return False

    def stop(self) -> None:
        ses_tracking.uninstall()  # it wraps the simulator's hook: undone first
        mailbox_simulator.uninstall()
        sms_status.uninstall()
        for timer in self.schedules.values():
            timer.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
            scheduler.unlisten(self.scheduler.book)
        for poller in self.pollers:
            doorbell.unlisten(doorbell.source_of(poller.arn), poller.wake)
            poller.stop()
        for poller in self.pollers:
            poller.join(timeout=5)
        if hasattr(self, "_http"):
            self._http.shutdown()
            self._http.server_close()
        for process in self.processes:
            process.stop()
        if hasattr(self, "_zygote"):
            self._zygote.stop()
        if hasattr(self, "_moto"):
            self._moto.stop()

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
