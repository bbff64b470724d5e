"""What every stand-in shares: routing, fault injection, counters, the request log, a config
object with defaults, and the control endpoint under ``/_standin/``.

A concrete stand-in (Partner Center, Entra ID, Key Vault) supplies its routes, its error
bodies and its state; this base class decides, for each request, whether a fault replaces or
wraps the real handling.
"""

from __future__ import annotations

import copy
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from requests.structures import CaseInsensitiveDict

from .counters import Counters
from .faults import Fault, FaultKind, FaultPlan, parse_kinds
from .ratelimit import RateLimit
from .server import Connection, StandInServer
from .wire import Request, Response, Route, Router

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

CONTROL_PREFIX = "/_standin"
REDACTED = "<redacted>"


@dataclass
class RecordedRequest:
    """One call a client made, as a test may want to assert it. Secrets are redacted."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict[str]
    json: Any
    form: dict[str, str] | None
    route: str
    fault: str | None
    at: float = field(default_factory=time.time)
    status: int | None = None  # None: no answer was sent (dropped or hung)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers.items()),
            "json": self.json,
            "form": self.form,
            "route": self.route,
            "fault": self.fault,
            "at": self.at,
            "status": self.status,
        }


def redact(value: Any, secret_keys: Collection[str]) -> Any:
    """A copy of a JSON value with the values of ``secret_keys`` (any depth) replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED if key.lower() in secret_keys else redact(item, secret_keys)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, secret_keys) for item in value]
    return value


class ControlError(ValueError):
    """A control-endpoint call the stand-in cannot act on (answered 400)."""


ConfigT = TypeVar("ConfigT", bound="DataclassInstance")


class StandInService(ABC, Generic[ConfigT]):
    #: key in the stack and on the CLI: "partner_center", "entra", "key_vault"
    name: ClassVar[str]
    counter_totals: ClassVar[tuple[str, ...]] = ()
    counter_tallies: ClassVar[tuple[str, ...]] = ()
    #: body keys (JSON or form, any depth, lower case) whose values the request log hides
    secret_body_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        self._config_defaults = copy.deepcopy(config)
        self.faults = FaultPlan()
        # A request-rate limit (ratelimit.py), checked before faults; None: unlimited.
        self.rate_limit: RateLimit | None = None
        self._counters = Counters(
            totals=self.counter_totals,
            tallies=("calls", "faults_injected", *self.counter_tallies),
        )
        self._lock = threading.RLock()
        self._recorded: list[RecordedRequest] = []
        self._api = Router(self.routes())
        self._control = Router([*self._common_control_routes(), *self.control_routes()])
        self._server: StandInServer | None = None

    # Subclass hooks ------------------------------------------------------------------------

    @abstractmethod
    def routes(self) -> list[Route]:
        """The emulated API."""

    def control_routes(self) -> list[Route]:
        """Extra ``/_standin/...`` routes (seeding) for this stand-in."""
        return []

    @abstractmethod
    def fault_response(self, fault: Fault) -> Response:
        """The answer for an injected status fault, in this service's error format."""

    @abstractmethod
    def not_found(self, request: Request) -> Response:
        """The answer for a path the service does not have."""

    @abstractmethod
    def clear_state(self) -> None:
        """Forget seeded and created data (customers, secrets, apps...)."""

    # Lifecycle -------------------------------------------------------------------------------

    def listen(self, tls_context: ssl.SSLContext, *, port: int = 0) -> None:
        self._server = StandInServer(self, tls_context, port=port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} stand-in is not listening")
        return self._server.base_url

    def reset(self) -> None:
        """Back to a just-started stand-in: no data, faults, counters, log; default config."""
        self.faults.clear()
        self.rate_limit = None
        self._counters.reset()
        with self._lock:
            self._recorded.clear()
            self.clear_state()
        for config_field in fields(self.config):
            default = copy.deepcopy(getattr(self._config_defaults, config_field.name))
            setattr(self.config, config_field.name, default)

    # Observations ----------------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, Any]:
        """A snapshot: ``calls`` by route key, ``faults_injected`` by fault label, and this
        service's own totals and tallies."""
        return self._counters.snapshot()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._recorded)

    # Serving -----------------------------------------------------------------------------------

    def serve(self, request: Request, connection: Connection) -> Response | None:
        if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
            return self._serve_control(request)
        resolved = self._api.resolve(request.method, request.path)
        route_key = resolved[0].key if resolved else f"{request.method} (unknown path)"
        self._counters.tally("calls", route_key)
        limit = self.rate_limit
        wait = limit.take(request.method, request.path) if limit is not None else None
        fault = Fault.status(429, retry_after=wait) if wait else None
        fault = fault or self.faults.take(request.method, request.path)
        record = self._record(request, route_key, fault)
        response = self._answer(request, resolved, fault, connection)
        record.status = response.status if response is not None else None
        return response

    def _answer(
        self,
        request: Request,
        resolved: tuple[Route, dict[str, str]] | None,
        fault: Fault | None,
        connection: Connection,
    ) -> Response | None:
        def handle() -> Response:
            if resolved is None:
                return self.not_found(request)
            route, params = resolved
            return route.handler(request, params)

        if fault is None:
            return handle()
        self._counters.tally("faults_injected", fault.label)
        if fault.kind is FaultKind.STATUS and fault.bare:
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            reason = f"{fault.status_code} (injected by a gateway in front of the service)"
            return Response(fault.status_code or 500, reason.encode(), headers)
        if fault.kind is FaultKind.STATUS:
            return self.fault_response(fault)
        if fault.kind is FaultKind.LATENCY:
            connection.pause(fault.seconds)
            return handle()
        if fault.handles_request:
            handle()  # applied server-side; the client never hears about it
        if fault.kind in (FaultKind.HANG, FaultKind.APPLY_THEN_HANG):
            connection.pause(fault.seconds)
        connection.drop()
        return None

    def _record(self, request: Request, route_key: str, fault: Fault | None) -> RecordedRequest:
        json_body: Any = None
        form_body: dict[str, str] | None = None
        content_type = request.headers.get("Content-Type", "")
        if request.body:
            if "x-www-form-urlencoded" in content_type:
                form_body = redact(request.form(), self.secret_body_keys)
            else:
                try:
                    json_body = redact(request.json(), self.secret_body_keys)
                except ValueError:
                    json_body = None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query={name: list(values) for name, values in request.query.items()},
            headers=CaseInsensitiveDict(request.headers),
            json=json_body,
            form=form_body,
            route=route_key,
            fault=fault.label if fault else None,
        )
        with self._lock:
            self._recorded.append(record)
        return record

    def count(self, name: str, amount: int = 1) -> None:
        self._counters.add(name, amount)

    def tally(self, name: str, key: str) -> None:
        self._counters.tally(name, key)

    # Control endpoint ----------------------------------------------------------------------

    def _serve_control(self, request: Request) -> Response:
        resolved = self._control.resolve(request.method, request.path)
        if resolved is None:
            return Response.json(
                404, {"error": f"no control route {request.method} {request.path}"}
            )
        route, params = resolved
        try:
            return route.handler(request, params)
        except (ControlError, KeyError, TypeError, ValueError) as problem:
            return Response.json(400, {"error": f"{type(problem).__name__}: {problem}"})

    def _common_control_routes(self) -> list[Route]:
        return [
            Route("GET", f"{CONTROL_PREFIX}/counters", self._control_counters),
            Route("GET", f"{CONTROL_PREFIX}/requests", self._control_requests),
            Route("GET", f"{CONTROL_PREFIX}/config", self._control_config),
            Route("POST", f"{CONTROL_PREFIX}/config", self._control_update_config),
            Route("GET", f"{CONTROL_PREFIX}/faults", self._control_faults),
            Route("POST", f"{CONTROL_PREFIX}/faults", self._control_add_fault),
            Route("POST", f"{CONTROL_PREFIX}/faults/random", self._control_random_faults),
            Route("DELETE", f"{CONTROL_PREFIX}/faults", self._control_clear_faults),
            Route("POST", f"{CONTROL_PREFIX}/reset", self._control_reset),
            Route("GET", f"{CONTROL_PREFIX}/health", self._control_health),
        ]

    def _control_health(self, _request: Request, _params: dict[str, str]) -> Response:
        return Response.json(200, {"service": self.name, "ok": True})

    def _control_counters(self, _request: Request, _params: dict[str, str]) -> Response:
        return Response.json(200, self.counters)

    def _control_requests(self, _request: Request, _params: dict[str, str]) -> Response:
        return Response.json(200, [record.to_json() for record in self.requests])

    def _control_config(self, _request: Request, _params: dict[str, str]) -> Response:
        return Response.json(200, asdict(self.config))

    def _control_update_config(self, request: Request, _params: dict[str, str]) -> Response:
        self.update_config(control_object(request))
        return self._control_config(request, _params)

    def configure(self, **changes: Any) -> None:
        """``update_config`` by keyword, e.g. ``partner_center.configure(success_status=200)``
        (``reset()`` restores the defaults, so a test's choice ends with the test)."""
        self.update_config(changes)

    def update_config(self, changes: dict[str, Any]) -> None:
        """Set config fields by name, refusing unknown names and values of the wrong type."""
        for name, value in changes.items():
            if not hasattr(self.config, name):
                raise ControlError(f"unknown config field {name!r}")
            current = getattr(self.config, name)
            if isinstance(current, bool) != isinstance(value, bool) or not isinstance(
                value, (type(current), int) if isinstance(current, float) else type(current)
            ):
                raise ControlError(f"config field {name!r} takes a {type(current).__name__}")
        for name, value in changes.items():
            setattr(self.config, name, value)

    def _control_faults(self, _request: Request, _params: dict[str, str]) -> Response:
        return Response.json(200, self.faults.describe())

    def _control_add_fault(self, request: Request, _params: dict[str, str]) -> Response:
        payload = control_object(request)
        times = payload.get("times", 1)
        self.faults.add(Fault.from_json(payload["fault"]), match=payload.get("match"), times=times)
        return Response.json(200, self.faults.describe())

    def _control_random_faults(self, request: Request, _params: dict[str, str]) -> Response:
        payload = control_object(request)
        kinds = payload.get("kinds")
        self.faults.random(
            seed=payload.get("seed"),
            rate=float(payload["rate"]),
            kinds=None if kinds is None else _control_kinds(kinds),
            match=payload.get("match"),
        )
        return Response.json(200, self.faults.describe())

    def _control_clear_faults(self, _request: Request, _params: dict[str, str]) -> Response:
        self.faults.clear()
        return Response.json(200, self.faults.describe())

    def _control_reset(self, _request: Request, _params: dict[str, str]) -> Response:
        self.reset()
        return Response.json(200, {"reset": self.name})


def _control_kinds(kinds: Any) -> list[Fault]:
    if isinstance(kinds, str):
        return list(parse_kinds(kinds))
    return [
        Fault.from_json(kind) if isinstance(kind, dict) else Fault.parse(kind) for kind in kinds
    ]


def control_object(request: Request) -> dict[str, Any]:
    payload = request.json() if request.body else {}
    if not isinstance(payload, dict):
        raise ControlError("the body must be a JSON object")
    return payload
