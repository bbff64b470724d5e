"""HTTP requests and responses as the stand-ins see them, and routing by path template."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, unquote

from requests.structures import CaseInsensitiveDict


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: CaseInsensitiveDict[str]
    body: bytes

    @classmethod
    def from_target(
        cls, method: str, target: str, headers: CaseInsensitiveDict[str], body: bytes
    ) -> Request:
        path, _, query_string = target.partition("?")
        return cls(method, path, parse_qs(query_string, keep_blank_values=True), headers, body)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (the OAuth token endpoint's input)."""
        fields = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}

    def bearer_token(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload).encode("utf-8"), all_headers)

    @classmethod
    def empty(cls, status: int, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


Handler = Callable[[Request, dict[str, str]], Response]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    """One endpoint. ``key`` ("POST /v1/customers/{id}/users") names it in the counters."""

    method: str
    template: str
    handler: Handler
    trailing_slash: bool = False

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        found = self._pattern.fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        literals = _PLACEHOLDER.split(self.template)
        # split() alternates literal text and placeholder names: escape one, capture the other.
        regex = "".join(
            re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
            for index, part in enumerate(literals)
        )
        return re.compile(regex + ("/?" if self.trailing_slash else ""))


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = list(routes)

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None
