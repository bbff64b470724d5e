"""Import a Python v2 function app and index its queue-triggered functions from the same
metadata the Functions host reads (``get_functions()`` and each function's bindings)."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import json
import logging
import sys
import threading
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import azure.functions as func
from azure.functions import queue as azf_queue
from azure.functions.decorators.function_app import Function

from devtools.funchost.errors import FunctionHostError
from devtools.funchost.settings import lookup_setting, resolve_setting_expressions
from devtools.funchost.storage import normalize_queue_name

logger = logging.getLogger("devtools.funchost")

RETURN_BINDING = "$return"
# The worker passes the invocation context to a parameter of this name.
CONTEXT_PARAMETER = "context"

_module_numbers = itertools.count(1)
_import_lock = threading.Lock()


@dataclass(frozen=True)
class QueueOutput:
    """A ``queue`` output binding with its queue name resolved."""

    arg_name: str
    queue_name: str
    connection: str


@dataclass(frozen=True)
class QueueFunction:
    """A queue-triggered function as the local host runs it."""

    name: str
    trigger_arg: str
    queue_name: str
    connection: str
    outputs: tuple[QueueOutput, ...]
    user_function: Callable[..., object]
    is_async: bool
    context_arg: str | None

    @property
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function: its route (without the ``api/`` prefix), methods (None:
    any) and auth level, as its binding declares them."""

    name: str
    trigger_arg: str
    route: str
    methods: tuple[str, ...] | None
    auth_level: str  # "anonymous", "function" or "admin"
    user_function: Callable[..., object]
    is_async: bool
    context_arg: str | None


@dataclass(frozen=True)
class SkippedFunction:
    name: str
    reason: str


@dataclass(frozen=True)
class AppIndex:
    queue_functions: tuple[QueueFunction, ...]
    skipped: tuple[SkippedFunction, ...]
    http_functions: tuple[HttpFunction, ...] = ()


def import_script(script_path: Path) -> ModuleType:
    """Import the app script under a module name of its own, so two apps whose scripts are
    both called function_app.py can live in one process (tests run several)."""
    if not script_path.is_file():
        raise FunctionHostError(f"the function app script {script_path} does not exist")
    app_dir = str(script_path.parent)
    with _import_lock:
        # The worker runs with the app folder on sys.path, so the app's own packages import.
        if app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        module_name = f"_funchost_app{next(_module_numbers)}_{script_path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, script_path)
    if spec is None or spec.loader is None:
        raise FunctionHostError(f"cannot import {script_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise FunctionHostError(f"importing {script_path} failed: {error!r}") from error
    return module


def find_function_app(module: ModuleType) -> func.FunctionRegister:
    """The single FunctionApp (or other FunctionRegister) at the top level of the script."""
    apps: dict[int, func.FunctionRegister] = {}
    for value in vars(module).values():
        if isinstance(value, func.FunctionRegister):
            apps[id(value)] = value
    if not apps:
        raise FunctionHostError(
            f"{module.__file__} defines no FunctionApp at the top level (app = func.FunctionApp())"
        )
    if len(apps) > 1:
        raise FunctionHostError(
            f"{module.__file__} defines more than one FunctionApp; the worker accepts only one"
        )
    return next(iter(apps.values()))


def _get_functions_quietly(app: func.FunctionRegister) -> list[Function]:
    # get_functions() warns on the root logger that auth levels only apply to HTTP functions;
    # for a queue-only app that is noise, not advice.
    def drop_auth_level_notice(record: logging.LogRecord) -> bool:
        return "Auth level is not applied" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(drop_auth_level_notice)
    try:
        return app.get_functions()
    except ValueError as error:
        raise FunctionHostError(f"indexing the app failed: {error}") from error
    finally:
        root.removeFilter(drop_auth_level_notice)


def _is_disabled(name: str, settings: Mapping[str, str]) -> bool:
    value = lookup_setting(settings, f"AzureWebJobs.{name}.Disabled")
    return value is not None and value.strip().lower() in {"true", "1"}


def _type_hints(user_function: Callable[..., object]) -> dict[str, object]:
    try:
        return dict(typing.get_type_hints(user_function))
    except Exception:
        # Unresolvable annotations are the app's business; treat them as absent.
        return {}


def _check_parameters(
    name: str,
    user_function: Callable[..., object],
    trigger_arg: str,
    output_args: list[str],
) -> str | None:
    """Refuse what the Python worker refuses at load time; return the context parameter."""
    parameters = inspect.signature(user_function).parameters
    hints = _type_hints(user_function)
    binding_args = {trigger_arg, *output_args}
    context_arg: str | None = None
    for parameter in parameters:
        if parameter in binding_args:
            continue
        if parameter == CONTEXT_PARAMETER:
            context_arg = parameter
            continue
        raise FunctionHostError(
            f"function {name!r}: parameter {parameter!r} has no binding "
            "(the worker would refuse to load the function)"
        )
    for arg in binding_args:
        if arg not in parameters:
            raise FunctionHostError(f"function {name!r}: binding {arg!r} has no parameter")

    trigger_hint = hints.get(trigger_arg)
    if trigger_hint is not None and not (
        isinstance(trigger_hint, type) and issubclass(trigger_hint, func.QueueMessage)
    ):
        raise FunctionHostError(
            f"function {name!r}: the queue trigger parameter {trigger_arg!r} is annotated "
            f"{trigger_hint!r}; the worker only binds func.QueueMessage"
        )
    for arg in output_args:
        hint = hints.get(arg)
        if hint is not None and typing.get_origin(hint) is not func.Out:
            raise FunctionHostError(
                f"function {name!r}: output parameter {arg!r} must be annotated func.Out[...]"
            )
        if hint is not None:
            (inner,) = typing.get_args(hint) or (str,)
            check = azf_queue.QueueMessageOutConverter.check_output_type_annotation
            if not check(inner):
                hint = ""
                if typing.get_origin(inner) is list:
                    # The library's check only recognises typing.List, not list[...] (PEP 585).
                    hint = "; write typing.List[str], which the worker's check accepts"
                raise FunctionHostError(
                    f"function {name!r}: func.Out[{inner!r}] is not a type the queue output "
                    f"binding accepts (str, bytes, or a list of str){hint}"
                )
    return context_arg


def index_app(
    app: func.FunctionRegister,
    settings: Mapping[str, str],
    *,
    allowlist: tuple[str, ...] | None = None,
) -> AppIndex:
    """Turn the app's functions into runnable queue and HTTP functions, resolving
    ``%SETTING%`` in queue names."""
    queue_functions: list[QueueFunction] = []
    http_functions: list[HttpFunction] = []
    skipped: list[SkippedFunction] = []
    for function in _get_functions_quietly(app):
        name = function.get_function_name() or function.get_user_function().__name__
        if allowlist is not None and name not in allowlist:
            skipped.append(SkippedFunction(name, 'not listed in host.json "functions"'))
            continue
        if _is_disabled(name, settings):
            skipped.append(SkippedFunction(name, f"disabled by AzureWebJobs.{name}.Disabled"))
            continue
        bindings: list[dict[str, object]] = json.loads(function.get_function_json())["bindings"]
        triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
        trigger_type = str(triggers[0]["type"]) if triggers else "none"
        if trigger_type == "httpTrigger":
            http_functions.append(_http_function(name, function, bindings, app))
            continue
        if trigger_type != "queueTrigger":
            skipped.append(SkippedFunction(name, f"{trigger_type} is not emulated"))
            continue
        queue_functions.append(_queue_function(name, function, bindings, settings))
    return AppIndex(tuple(queue_functions), tuple(skipped), tuple(http_functions))


def _http_function(
    name: str, function: Function, bindings: list[dict[str, object]], app: func.FunctionRegister
) -> HttpFunction:
    trigger = next(b for b in bindings if b.get("type") == "httpTrigger")
    for binding in bindings:
        if binding is trigger:
            continue
        if binding.get("type") != "http" or binding.get("name") != RETURN_BINDING:
            raise FunctionHostError(
                f"function {name!r}, binding {binding.get('name')!r}: only an HTTP trigger "
                "with an HTTP $return output is emulated for HTTP functions"
            )
    trigger_arg = str(trigger.get("name", ""))
    user_function = function.get_user_function()
    context_arg = None
    for parameter in inspect.signature(user_function).parameters:
        if parameter == CONTEXT_PARAMETER:
            context_arg = parameter
        elif parameter != trigger_arg:
            raise FunctionHostError(
                f"function {name!r}: parameter {parameter!r} has no binding "
                "(the worker would refuse to load the function)"
            )
    methods = trigger.get("methods")
    # The binding leaves authLevel out when the app's default applies (FUNCTION unless the
    # FunctionApp was given another).
    level = trigger.get("authLevel") or getattr(app, "auth_level", None) or "FUNCTION"
    return HttpFunction(
        name=name,
        trigger_arg=trigger_arg,
        route=str(trigger.get("route") or name),
        methods=(
            tuple(str(m).upper() for m in methods)
            if isinstance(methods, list) and methods
            else None
        ),
        auth_level=str(getattr(level, "value", level)).lower(),
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        context_arg=context_arg,
    )


def _queue_function(
    name: str,
    function: Function,
    bindings: list[dict[str, object]],
    settings: Mapping[str, str],
) -> QueueFunction:
    trigger_arg = ""
    queue_name = ""
    connection = ""
    outputs: list[QueueOutput] = []
    for binding in bindings:
        binding_type = str(binding.get("type", ""))
        direction = str(binding.get("direction", "")).lower()
        arg = str(binding.get("name", ""))
        where = f"function {name!r}, binding {arg!r}"
        raw_queue = str(binding.get("queueName", ""))
        if "{" in raw_queue:
            raise FunctionHostError(f"{where}: binding expressions in queue names are not emulated")
        if binding_type == "queueTrigger":
            trigger_arg = arg
            queue_name = normalize_queue_name(
                resolve_setting_expressions(raw_queue, settings, where=where), where=where
            )
            connection = str(binding.get("connection") or "")
        elif binding_type == "queue" and direction == "out":
            outputs.append(
                QueueOutput(
                    arg_name=arg,
                    queue_name=normalize_queue_name(
                        resolve_setting_expressions(raw_queue, settings, where=where), where=where
                    ),
                    connection=str(binding.get("connection") or ""),
                )
            )
        else:
            raise FunctionHostError(
                f"{where}: {direction} binding of type {binding_type!r} is not emulated by the "
                "local host (only queue triggers and queue outputs are)"
            )
    user_function = function.get_user_function()
    parameter_outputs = [o.arg_name for o in outputs if o.arg_name != RETURN_BINDING]
    context_arg = _check_parameters(name, user_function, trigger_arg, parameter_outputs)
    return QueueFunction(
        name=name,
        trigger_arg=trigger_arg,
        queue_name=queue_name,
        connection=connection,
        outputs=tuple(outputs),
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        context_arg=context_arg,
    )
