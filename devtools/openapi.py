"""docs/openapi.json, generated from the code's models (docs/contract.md section 6).

    python -m devtools.openapi            # rewrite docs/openapi.json
    python -m devtools.openapi --check    # exit 1 when the document differs from the code

The request schema is the queue function's own event model (``shared.domain.events.HireEvent``) and
the answers are ``shared.service.intake``'s models, so the document cannot drift from what the code
reads and writes: a test runs the check in CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.domain.events import HireEvent
from shared.service.intake import (
    MAX_EVENTS,
    MAX_REQUEST_BYTES,
    READ_ROLE,
    SUBMIT_ROLE,
    ErrorAnswer,
    HireStatus,
    IntakeAnswer,
)

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
_REF = "#/components/schemas/{model}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorAnswer")}}},
    }


def _key_error(description: str) -> dict[str, Any]:
    # With a function key, the Functions host itself answers 401, with an empty body.
    return {
        "description": description + " With function keys the host answers with no body; "
        "with Entra ID the body is an ErrorAnswer.",
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorAnswer")}}},
    }


def build_document() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [
        (HireEvent, "validation"),
        (IntakeAnswer, "serialization"),
        (HireStatus, "serialization"),
        (ErrorAnswer, "serialization"),
    ]
    _, schemas = models_json_schema(models, by_alias=True, ref_template=_REF)
    components = dict(sorted(schemas.get("$defs", {}).items()))
    components["HireBatch"] = {
        "type": "object",
        "title": "HireBatch",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_EVENTS,
                "items": {"$ref": "#/components/schemas/HireEvent"},
            }
        },
    }
    security: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hire provisioning: HTTP intake and status",
            "version": "1.0.0",
            "description": (
                "HR systems post hire events and read a hire's status. Each event is "
                "validated as the queue function validates it: valid ones are queued, "
                "invalid ones are refused at once and never queued. Access: a function key "
                "per route (x-functions-key header or code query parameter) by default; in "
                "production, optionally Entra ID (App Service authentication) with the app "
                f"roles {SUBMIT_ROLE} (POST) and {READ_ROLE} (GET). See docs/http-intake.md."
            ),
        },
        "servers": [
            {
                "url": "https://{app}.azurewebsites.net",
                "variables": {"app": {"default": "func-example"}},
            }
        ],
        "paths": {
            "/api/hires": {
                "post": {
                    "operationId": "submitHires",
                    "summary": f"Post one hire event, or a batch of up to {MAX_EVENTS}",
                    "security": [*security, {"entra": [SUBMIT_ROLE]}],
                    "requestBody": {
                        "required": True,
                        "description": f"At most {MAX_REQUEST_BYTES} bytes. Each event must "
                        "fit a queue message (49152 bytes of UTF-8 JSON under the default "
                        "base64 message encoding).",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/HireEvent"},
                                        {"$ref": "#/components/schemas/HireBatch"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "One result per event, in order: accepted (queued) "
                            "or refused (never queued).",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/IntakeAnswer"}
                                }
                            },
                        },
                        "400": _error(
                            "The body is not JSON, not an event or batch, or a batch "
                            "that cannot be read one way; nothing was queued."
                        ),
                        "401": _key_error("No valid key or token."),
                        "403": _error(
                            "Entra ID: the caller lacks the app role or is not the "
                            "allowed application."
                        ),
                        "413": _error(
                            f"The body is over {MAX_REQUEST_BYTES} bytes or holds "
                            f"more than {MAX_EVENTS} events; nothing was queued."
                        ),
                        "503": {
                            "description": "The request queue failed part way: the results "
                            "say which events were queued; post the others again "
                            "(Retry-After).",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/IntakeAnswer"}
                                }
                            },
                        },
                    },
                }
            },
            "/api/hires/{eventId}": {
                "get": {
                    "operationId": "getHire",
                    "summary": "The hire as the ledger knows it",
                    "security": [*security, {"entra": [READ_ROLE]}],
                    "parameters": [
                        {
                            "name": "eventId",
                            "in": "path",
                            "required": True,
                            "description": "percent-encoded",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The hire. Nothing secret.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/HireStatus"}
                                }
                            },
                        },
                        "401": _key_error("No valid key or token."),
                        "403": _error("Entra ID: the caller lacks the app role."),
                        "404": _error("The ledger has no hire with this eventId."),
                        "503": _error("The ledger cannot be read now (Retry-After)."),
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
                "entra": {
                    "type": "oauth2",
                    "description": "Client credentials for the API's app registration "
                    "(scope api://<api-app-id>/.default); the token's roles claim must hold "
                    "the route's app role.",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
                            "scopes": {
                                SUBMIT_ROLE: "post hire events",
                                READ_ROLE: "read a hire's status",
                            },
                        }
                    },
                },
            },
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    arguments = parser.parse_args(argv)
    text = render()
    if arguments.check:
        current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.is_file() else ""
        if current != text:
            print(
                f"{DOCUMENT} differs from the code's models: run python -m devtools.openapi",
                file=sys.stderr,
            )
            return 1
        return 0
    DOCUMENT.parent.mkdir(exist_ok=True)
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
