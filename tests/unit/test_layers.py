"""The layers of shared/ stay apart: domain, service, adapters, the composition root.

The domain imports only the domain; the service layer the domain and itself; neither imports
an SDK or an HTTP library. Adapters may use the domain and each other; only the composition
root (shared/composition.py) wires adapters into the service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SDKS = ("azure", "requests", "urllib3", "msal", "opentelemetry")
ALLOWED = {"domain": {"domain"}, "service": {"domain", "service"}}
# Known debts, each with what pays it off; the list only shrinks.
EXCEPTIONS = {
    # HttpAccess and HttpAccessSettings are values the intake decides with: move them (not
    # their from_environment reading, which stays in settings) into the domain.
    ("service/intake.py", "shared.settings"),
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "shared":
                found.update(f"shared.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it_and_no_sdk(layer: str) -> None:
    for path in sorted((SHARED / layer).glob("*.py")):
        for name in imports(path):
            top = name.split(".")[0]
            assert top not in SDKS, f"shared/{layer}/{path.name} imports {name}"
            if top == "shared" and (f"{layer}/{path.name}", name) not in EXCEPTIONS:
                below = name.split(".")[1] if "." in name else ""
                assert below in ALLOWED[layer], f"shared/{layer}/{path.name} imports {name}"


def test_adapters_never_import_the_service_layer_or_the_root() -> None:
    for path in sorted((SHARED / "adapters").glob("*.py")):
        for name in imports(path):
            parts = name.split(".")
            if parts[0] == "shared" and len(parts) > 1:
                assert parts[1] in {"domain", "adapters"}, (
                    f"shared/adapters/{path.name} imports {name}"
                )
