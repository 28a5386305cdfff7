"""Loading and invoking Lambda handlers in-process, as the Lambda service would."""

from __future__ import annotations

import importlib.util
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_local.provision import ACCOUNT_ID, FunctionSpec


@dataclass
class LambdaContext:
    """The context object Lambda passes; Powertools reads these fields."""

    function_name: str
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_ms: int = 10_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


def load_handler(code_path: str | Path, handler: str, module_alias: str) -> Any:
    """The object named by a template Handler ("app.handler") in a function's code folder.

    Each function's module is loaded under its own name, so two functions' `app.py` never clash.
    """
    module_name, attribute = handler.rsplit(".", 1)
    path = Path(code_path) / f"{module_name.replace('.', '/')}.py"
    alias = f"crm_function_{module_alias}"
    if alias not in sys.modules:
        spec = importlib.util.spec_from_file_location(alias, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        spec.loader.exec_module(module)
    return getattr(sys.modules[alias], attribute)


class OneAtATime:
    """A handler that runs one invocation at a time, as one Lambda container does. Handlers may rely on it:
    a Chalice app keeps the request being handled in ``app.current_request``, which concurrent requests on
    the local server's threads would otherwise overwrite mid-request. Attributes are the handler's (chalice's
    local gateway reads the app's routes)."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            return self._handler(event, context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)


def function_arn(spec: FunctionSpec, region: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{spec.logical_id}"


class Function:
    """A deployed function: its spec and its handler, loaded in this process unless one is given (the runtime's
    worker processes: crm_local.workers)."""

    def __init__(self, spec: FunctionSpec, region: str = "us-east-1", handler: Any = None) -> None:
        self.spec = spec
        self.handler = handler if handler is not None else OneAtATime(
            load_handler(spec.code_path, spec.handler, spec.logical_id))
        self.arn = function_arn(spec, region)

    def invoke(self, event: dict[str, Any]) -> Any:
        context = LambdaContext(function_name=self.spec.logical_id, invoked_function_arn=self.arn,
                                timeout_ms=self.spec.timeout * 1000)
        return self.handler(event, context)
