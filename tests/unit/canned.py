"""Canned HTTP for the unit tier: real clients, answers from a script, no network.

``CannedHttp`` is a requests transport adapter (requests' own extension point, mounted on a
``Session``): the real ``PartnerCenterClient``, and the Azure SDK clients through azure-core's
``RequestsTransport``, build and send their requests as usual; the adapter records each one
and answers it from the script with a response made the way requests makes its own
(``HTTPAdapter.build_response`` over a urllib3 response). Nothing is patched.
"""

from __future__ import annotations

import io
import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPResponse

BASE_URL = "https://api.partnercenter.test"


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: Mapping[str, str] = field(default_factory=dict)


Responder = Callable[[requests.PreparedRequest], Answer]


class CannedHttp(HTTPAdapter):
    """Answers each request with the next scripted answer (or a responder's), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.script: deque[Answer | Responder | Exception] = deque()
        self.requests: list[requests.PreparedRequest] = []

    def answer(self, status: int = 200, body: Any = None, **headers: str) -> CannedHttp:
        # Header names as keywords: Retry_After= is sent as Retry-After.
        named = {name.replace("_", "-"): value for name, value in headers.items()}
        self.script.append(Answer(status, body, named))
        return self

    def respond(self, responder: Responder | Exception) -> CannedHttp:
        self.script.append(responder)
        return self

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **_kwargs: Any
    ) -> requests.Response:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"no canned answer left for {request.method} {request.url}")
        scripted = self.script.popleft()
        if isinstance(scripted, Exception):
            raise scripted
        answer = scripted if isinstance(scripted, Answer) else scripted(request)
        body = answer.body
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body).encode("utf-8")
        headers = {"Content-Length": str(len(payload)), **dict(answer.headers)}
        if body is not None and not isinstance(body, bytes):
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        raw = HTTPResponse(
            body=io.BytesIO(payload),
            headers=headers,
            status=answer.status,
            preload_content=False,
            decode_content=False,
            request_method=request.method,
        )
        return self.build_response(request, raw)

    def close(self) -> None:
        pass


def session_with(canned: CannedHttp) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", canned)
    session.mount("http://", canned)
    return session
