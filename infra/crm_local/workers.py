"""Lambda containers, emulated: each function's handler runs in a worker process of its own, one invocation at a
time, so that the functions' Python (pydantic, botocore, the domain code) runs on every core rather than under
the one GIL of the runtime's process, where moto's server, the local API and the pollers stay.

The runtime's process sends an invocation's event and its clock's offset (``crm.clock.offset``: the
fast-forward of ``LocalRuntime.advance_clock``) over a socket pair; the worker moves its own clock to that
offset, calls the handler with a fresh Lambda context, and sends back its answer (or the traceback of what it
raised). A worker that dies is replaced at the next invocation, as Lambda starts a new container.

A function has as many workers as it has invocations at once, up to ``CONCURRENCY`` (``Containers``): Lambda
scales a function out rather than queueing its requests, and the local API's eight concurrent webhooks queued
behind one worker each waited for the seven before them (most of a webhook's latency). A second worker is forked
when an invocation finds every one busy, and stays warm.

Workers are forked from one process (``Zygote``, started by ``python -m crm_local.workers FD``) that imported
what the functions' modules import (boto3, pydantic, chalice, Powertools, the domain code) once, before any
thread ran in it: eleven workers then cost one set of imports, not eleven, and share those pages. It also reads
botocore's data for the services the functions call (``BOTOCORE_SERVICES``: service models, endpoint rules,
partitions) into one loader that every session of a worker then shares: the functions make a session per client
(crm.adapters.clients), and each new session's loader read and decoded those JSON files again, a few hundred
milliseconds of a worker's first invocations on a busy machine (the demo's slowest requests were those).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle, send_handle
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from crm import clock

from crm_local.lambdas import LambdaContext, load_handler
from crm_local.provision import FunctionSpec

READY_TIMEOUT_SECONDS = 120.0
# Containers a function may run at once: enough to keep both cores of a small machine busy while others wait on
# moto; a pollers' function uses one (a poller invokes one batch at a time, as Lambda does per shard).
CONCURRENCY = 4
STOP_TIMEOUT_SECONDS = 5.0
# What the functions' code makes clients for (crm.adapters.clients), read once in the zygote.
BOTOCORE_SERVICES = ("dynamodb", "events", "firehose", "s3", "scheduler", "secretsmanager", "sesv2", "sns", "sqs")


class WorkerFailed(RuntimeError):
    """The handler raised in its worker (the message carries the worker's traceback), or the worker died."""


class Zygote:
    """The process workers are forked from: ``fork`` hands it one end of a new socket pair and the worker's
    arguments; the forked worker answers on that end."""

    def __init__(self, code_paths: Iterable[tuple[str, str]]) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen([sys.executable, "-m", "crm_local.workers", str(theirs.fileno())],
                                             pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        self._connection = Connection(ours.detach())
        self._connection.send(sorted(set(code_paths)))  # what to import before the first fork
        self._lock = threading.Lock()

    def fork(self, arguments: tuple[str, ...], environment: Mapping[str, str]) -> Connection:
        ours, theirs = socket.socketpair()
        with self._lock:
            try:
                self._connection.send((arguments, dict(environment)))
                send_handle(self._connection, theirs.fileno(), self._process.pid)
                self._connection.recv()  # forked: the worker holds its end
            except (EOFError, OSError) as died:
                raise WorkerFailed("the worker processes' parent (crm_local.workers) is gone") from died
            finally:
                theirs.close()
        return Connection(ours.detach())

    def stop(self) -> None:
        """The zygote exits when its connection closes; the workers exit when theirs do."""
        self._connection.close()
        try:
            self._process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class WorkerProcess:
    """One function's worker, forked on demand; ``invoke`` runs one invocation at a time."""

    def __init__(self, zygote: Zygote, spec: FunctionSpec, arn: str, environment: Mapping[str, str]) -> None:
        self.zygote = zygote
        self.spec = spec
        self.arn = arn
        # The runtime's environment wins: it holds every function's (agreed) variables and what the runtime sets
        # over the template's (PUBLIC_API_URL: the links in emails point at the local API; LOG_LEVEL).
        self.environment = {**spec.environment, **environment}
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._ready = False

    def start(self) -> None:
        """Fork the worker (it loads the handler meanwhile: ``ready`` waits for it)."""
        with self._lock:
            self._spawn()

    def ready(self) -> None:
        with self._lock:
            self._await_ready()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            if self._connection is None:
                self._spawn()
            self._await_ready()
            assert self._connection is not None
            try:
                self._connection.send((event, clock.offset()))
                status, value = self._connection.recv()
            except (EOFError, OSError) as died:
                self._discard()
                raise WorkerFailed(f"{self.spec.logical_id}'s worker process died mid-invocation") from died
        if status != "ok":
            raise WorkerFailed(f"{self.spec.logical_id} raised in its worker:\n{value}")
        return value

    def stop(self) -> None:
        with self._lock:
            self._discard()

    def _spawn(self) -> None:
        self._connection = self.zygote.fork(
            (str(self.spec.code_path), self.spec.handler, self.spec.logical_id, str(self.spec.timeout), self.arn),
            self.environment)
        self._ready = False

    def _await_ready(self) -> None:
        if self._ready:
            return
        assert self._connection is not None
        try:
            if not self._connection.poll(READY_TIMEOUT_SECONDS):
                raise WorkerFailed(f"{self.spec.logical_id}'s worker did not load its handler in "
                                   f"{READY_TIMEOUT_SECONDS:.0f} s")
            status, value = self._connection.recv()
        except (EOFError, OSError) as died:
            self._discard()
            raise WorkerFailed(f"{self.spec.logical_id}'s worker process died while loading") from died
        if status != "ready":
            self._discard()
            raise WorkerFailed(f"{self.spec.logical_id}'s handler did not load:\n{value}")
        self._ready = True

    def _discard(self) -> None:
        """Close the connection: the worker reads it as the signal to exit."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._ready = False


class Containers:
    """A function's warm workers: an invocation takes an idle one, or forks another while fewer than ``limit``
    run, else waits for one to finish (the interface of ``WorkerProcess``: start, ready, invoke, stop)."""

    def __init__(self, zygote: Zygote, spec: FunctionSpec, arn: str, environment: Mapping[str, str],
                 limit: int = CONCURRENCY) -> None:
        self.spec = spec
        self.limit = limit
        self._arguments = (zygote, spec, arn, environment)
        self._workers = [self._new()]
        self._idle: list[WorkerProcess] = []
        self._changed = threading.Condition()

    def _new(self) -> WorkerProcess:
        return WorkerProcess(*self._arguments)

    def start(self) -> None:
        self._workers[0].start()

    def ready(self) -> None:
        self._workers[0].ready()
        with self._changed:
            self._idle.append(self._workers[0])

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._changed:
            while not self._idle and len(self._workers) >= self.limit:
                self._changed.wait()
            if self._idle:
                worker = self._idle.pop()  # the one that finished last: its caches are the warmest
            else:
                worker = self._new()
                self._workers.append(worker)
        try:
            return worker.invoke(event)  # a new worker forks here, outside the lock
        finally:
            with self._changed:
                self._idle.append(worker)
                self._changed.notify()

    def stop(self) -> None:
        with self._changed:
            workers = list(self._workers)
        for worker in workers:
            worker.stop()


class InWorker:
    """A handler that runs in a worker process, called as the handler itself would be. Other attributes (a
    Chalice app's routes, which chalice's local gateway reads) come from a copy of the handler loaded in this
    process on first use, never invoked."""

    def __init__(self, process: WorkerProcess | Containers) -> None:
        self.process = process
        self._local: Any = None

    def __call__(self, event: dict[str, Any], context: Any = None) -> Any:
        return self.process.invoke(event)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("process", "_local"):
            raise AttributeError(name)
        if self._local is None:
            spec = self.process.spec
            self._local = load_handler(spec.code_path, spec.handler, spec.logical_id)
        return getattr(self._local, name)


def serve(connection: Connection, code_path: str, handler_name: str, logical_id: str, timeout: int,
          arn: str) -> None:
    """The worker's loop: load the handler, then answer invocations until the runtime closes the connection."""
    try:
        handler = load_handler(code_path, handler_name, logical_id)
    except BaseException:
        connection.send(("failed", traceback.format_exc()))
        return
    connection.send(("ready", None))
    applied = timedelta(0)
    while True:
        try:
            event, offset = connection.recv()
        except (EOFError, OSError):
            return
        if offset != applied:
            clock.shift(offset - applied)
            applied = offset
        context = LambdaContext(function_name=logical_id, invoked_function_arn=arn, timeout_ms=timeout * 1000)
        try:
            answer: tuple[str, Any] = ("ok", handler(event, context))
            connection.send(answer)
        except Exception:
            connection.send(("error", traceback.format_exc()))


def imported_by(code_path: str, handler: str) -> list[str]:
    """The absolute imports at the top of a handler's module (what a worker will import to load it)."""
    path = Path(code_path) / f"{handler.rsplit('.', 1)[0].replace('.', '/')}.py"
    modules: list[str] = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module != "__future__":
            modules.append(node.module)
    return modules


def share_botocore_data(services: Iterable[str] = BOTOCORE_SERVICES) -> botocore.loaders.Loader:
    """One loader for every botocore session made from now on (on botocore's default data path), holding what a
    client of each service reads when it is made; the loader."""
    shared = botocore.loaders.create_loader()
    made = botocore.loaders.create_loader

    def create_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        return shared if search_path_string is None else made(search_path_string)

    botocore.session.create_loader = create_loader
    for service in services:  # made and dropped: the loader keeps what they read
        session = boto3.session.Session(aws_access_key_id="warming", aws_secret_access_key="warming",
                                        region_name="us-east-1")
        session.client(service, endpoint_url="http://127.0.0.1:9")  # type: ignore[call-overload]
    return shared


def zygote(connection: Connection) -> None:
    """Import what the handlers import, then fork a worker per request until the runtime closes the connection."""
    try:
        preload = connection.recv()
    except (EOFError, OSError):
        return
    for code_path, handler in preload:
        for module in imported_by(code_path, handler):
            with contextlib.suppress(Exception):  # the worker itself will say what does not import
                importlib.import_module(module)
    share_botocore_data()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped as they exit
    while True:
        try:
            arguments, environment = connection.recv()
            fd = recv_handle(connection)
        except (EOFError, OSError):
            return
        if os.fork() == 0:
            connection.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.environ.clear()
            os.environ.update(environment)
            code = 0
            try:
                serve(Connection(fd), arguments[0], arguments[1], arguments[2], int(arguments[3]), arguments[4])
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)  # nothing of the zygote's to clean up
        os.close(fd)
        connection.send("forked")


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the runtime stops the workers itself (it closes their connections).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    zygote(Connection(int(sys.argv[1])))
