"""The local runtime's worker processes (crm_local.workers): each function's handler in a process of its own,
forked from one that imported what the handlers import; the runtime's clock offset travels with each
invocation; what a handler raises comes back with its traceback; a worker that dies is replaced; a function
runs as many workers as it has invocations at once, up to its limit."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crm import clock
from crm_local.provision import FunctionSpec
from crm_local.workers import Containers, InWorker, WorkerFailed, WorkerProcess, Zygote, imported_by

pytestmark = pytest.mark.integration

HANDLER = '''
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from crm.clock import utc_now



class App:
    """Callable, with attributes of its own, as a Chalice app is."""

    routes = {"/things": "GET"}
    loaded_in = os.getpid()

    def __call__(self, event, context):
        if event.get("raise"):
            raise ValueError("the handler refused " + event["raise"])
        if event.get("exit"):
            os._exit(3)
        if event.get("client"):  # the botocore data files a new session reads to make a client of the service
            import boto3
            import botocore.loaders
            read = []
            loading = botocore.loaders.JSONFileLoader.load_file
            botocore.loaders.JSONFileLoader.load_file = lambda self, path: read.append(path) or loading(self, path)
            try:
                boto3.session.Session(region_name="us-east-1").client(event["client"])
            finally:
                botocore.loaders.JSONFileLoader.load_file = loading
            return read
        if event.get("meet"):  # say it started, then hold until the test lets it go
            folder = Path(event["meet"])
            (folder / f"started-{os.getpid()}-{event['n']}").touch()
            while not (folder / "go").exists():
                time.sleep(0.01)
        return {"pid": os.getpid(), "ahead": (utc_now() - datetime.now(UTC)).total_seconds(),
                "setting": os.environ.get("THE_SETTING"), "url": os.environ.get("THE_URL"),
                "function": context.function_name}


handler = App()
'''


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("function")
    (folder / "app.py").write_text(HANDLER)
    return folder


@pytest.fixture(scope="module")
def zygote(code: Path) -> Iterator[Zygote]:
    started = Zygote([(str(code), "app.handler")])
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def worker(zygote: Zygote, code: Path) -> Iterator[WorkerProcess]:
    spec = FunctionSpec("Things", "app.handler", str(code),
                        {"THE_SETTING": "from the template", "THE_URL": "https://api.example.com"}, 3)
    process = WorkerProcess(zygote, spec, "arn:aws:lambda:us-east-1:123456789012:function:Things",
                            {"THE_URL": "http://127.0.0.1:8000"})
    process.start()
    process.ready()
    try:
        yield process
    finally:
        process.stop()


def test_a_handler_answers_from_its_own_process_with_its_function_environment(worker: WorkerProcess) -> None:
    answer = worker.invoke({})
    assert answer["pid"] != os.getpid()
    assert (answer["setting"], answer["function"]) == ("from the template", "Things")
    assert answer["url"] == "http://127.0.0.1:8000"  # what the runtime sets wins over the template's
    assert worker.invoke({})["pid"] == answer["pid"]  # one container, kept warm


def test_the_runtimes_clock_offset_reaches_the_worker_with_each_invocation(worker: WorkerProcess) -> None:
    assert abs(worker.invoke({})["ahead"]) < 60
    clock.shift(timedelta(days=3))
    try:
        assert abs(worker.invoke({})["ahead"] - timedelta(days=3).total_seconds()) < 60
        clock.shift(timedelta(hours=5))
        assert abs(worker.invoke({})["ahead"] - timedelta(days=3, hours=5).total_seconds()) < 60
    finally:
        clock.shift(-clock.offset())
    assert clock.utc_now() - datetime.now(UTC) < timedelta(seconds=60)


def test_what_a_handler_raises_comes_back_with_its_traceback(worker: WorkerProcess) -> None:
    with pytest.raises(WorkerFailed, match="ValueError: the handler refused this") as raised:
        worker.invoke({"raise": "this"})
    assert "app.py" in str(raised.value)
    assert worker.invoke({})["setting"] == "from the template"  # the worker lives on


def test_a_worker_that_dies_is_replaced_at_the_next_invocation(worker: WorkerProcess) -> None:
    before = worker.invoke({})["pid"]
    with pytest.raises(WorkerFailed, match="died mid-invocation"):
        worker.invoke({"exit": True})
    after = worker.invoke({})["pid"]
    assert after not in (before, os.getpid())


def test_a_handler_that_does_not_load_is_named(zygote: Zygote, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import a_module_that_is_not_there\n")
    spec = FunctionSpec("Broken", "broken.handler", str(tmp_path), {}, 3)
    process = WorkerProcess(zygote, spec, "arn", {})
    process.start()
    with pytest.raises(WorkerFailed, match=r"(?s)Broken's handler did not load:.*a_module_that_is_not_there"):
        process.ready()


def test_other_attributes_come_from_a_copy_loaded_here(worker: WorkerProcess) -> None:
    handler = InWorker(worker)
    assert handler.routes == {"/things": "GET"}  # what chalice's local gateway reads of an app
    assert handler.loaded_in == os.getpid()
    assert handler({}, None)["pid"] != os.getpid()


@pytest.fixture
def containers(zygote: Zygote, code: Path) -> Iterator[Containers]:
    spec = FunctionSpec("Things", "app.handler", str(code), {}, 3)
    started = Containers(zygote, spec, "arn", {}, limit=2)
    started.start()
    started.ready()
    try:
        yield started
    finally:
        started.stop()


def _meet(containers: Containers, folder: Path, invocations: int) -> list[int]:
    """Invoke ``invocations`` times at once; once ``limit`` of them started, let every one go; their pids."""
    with ThreadPoolExecutor(max_workers=invocations) as pool:
        answers = [pool.submit(containers.invoke, {"meet": str(folder), "n": n}) for n in range(invocations)]
        deadline = time.monotonic() + 60
        while len(list(folder.glob("started-*"))) < min(invocations, containers.limit):
            assert time.monotonic() < deadline, "the invocations did not start side by side"
            threading.Event().wait(0.01)
        (folder / "go").touch()
        return [answer.result(timeout=60)["pid"] for answer in answers]


def test_invocations_at_once_run_in_workers_side_by_side_up_to_the_limit(containers: Containers,
                                                                           tmp_path: Path) -> None:
    pids = _meet(containers, tmp_path, 3)
    assert len(set(pids)) == 2 and os.getpid() not in pids  # two ran at once; the third waited for one of them
    assert containers.invoke({})["pid"] in pids  # the workers stay warm: no third is forked for one at a time


def test_a_function_limited_to_one_worker_runs_one_invocation_at_a_time(zygote: Zygote, code: Path,
                                                                        tmp_path: Path) -> None:
    one = Containers(zygote, FunctionSpec("Things", "app.handler", str(code), {}, 3), "arn", {}, limit=1)
    one.start()
    one.ready()
    try:
        pids = _meet(one, tmp_path, 2)
    finally:
        one.stop()
    assert len(set(pids)) == 1


def test_a_worker_makes_its_clients_without_reading_botocores_data_again(worker: WorkerProcess) -> None:
    assert worker.invoke({"client": "sqs"}) == []
    assert worker.invoke({"client": "dynamodb"}) == []
    assert worker.invoke({"client": "kinesis"}) != []  # not one the functions call: read when first made


def test_the_zygote_imports_what_the_handlers_import(code: Path) -> None:
    assert imported_by(str(code), "app.handler") == ["os", "time", "datetime", "pathlib", "crm.clock"]
