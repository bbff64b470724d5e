"""The permission model (infra/permissions.json) checked against the template's role assignments.

Azure RBAC, as far as this check needs it: a role grants the patterns of its actions and
dataActions (`*` matches any characters, case does not matter) minus its notActions and
notDataActions; an assignment grants them on its scope and everything under it. A REST
operation is allowed when every action of at least one of its alternatives is granted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra import bicep

MODEL = bicep.INFRA / "permissions.json"


def load(path: Path = MODEL) -> dict[str, Any]:
    model: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return model


@cache
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.IGNORECASE)


def matches(pattern: str, action: str) -> bool:
    return _pattern(pattern).fullmatch(action) is not None


@dataclass(frozen=True)
class Grant:
    """What one assignment gives one principal on one resource of the model."""

    principal: str
    resource: str
    role: str
    patterns: tuple[str, ...]
    excluded: tuple[str, ...]
    where: str

    def allows(self, action: str) -> bool:
        return any(matches(p, action) for p in self.patterns) and not any(
            matches(p, action) for p in self.excluded
        )


def grants(root: Path = bicep.INFRA, model: dict[str, Any] | None = None) -> list[Grant]:
    """The template's role assignments under `root`, in the model's terms."""
    model = model or load()
    by_param = {param: key for key, p in model["principals"].items() for param in p["bicepParams"]}
    by_symbol = {location: key for key, r in model["resources"].items() for location in r["bicep"]}
    custom = bicep.custom_roles(bicep.INFRA)
    found: list[Grant] = []
    for assignment in bicep.role_assignments(root):
        where = f"{assignment.file}: {assignment.symbol}"
        assert assignment.principal in by_param, f"{where}: principal {assignment.principal} "
        "is not in permissions.json's principals"
        assert assignment.scope in by_symbol, (
            f"{where}: scope {assignment.scope} is not in permissions.json's resources"
        )
        if assignment.custom:
            role = custom[assignment.role]
            name = assignment.role
            patterns = role.actions + role.data_actions
            excluded = role.not_actions + role.not_data_actions
        else:
            facts = model["builtInRoles"].get(assignment.role)
            assert facts, f"{where}: role {assignment.role} is not in permissions.json's roles"
            name = facts["name"]
            patterns = tuple(facts["actions"]) + tuple(facts["dataActions"])
            excluded = tuple(facts.get("notActions", [])) + tuple(facts.get("notDataActions", []))
        found.append(
            Grant(
                principal=by_param[assignment.principal],
                resource=by_symbol[assignment.scope],
                role=name,
                patterns=patterns,
                excluded=excluded,
                where=where,
            )
        )
    return found


def _ancestors(model: dict[str, Any], resource: str) -> list[str]:
    chain = []
    current: str | None = resource
    while current is not None:
        chain.append(current)
        current = model["resources"][current]["parent"]
    return chain


def _subtree(model: dict[str, Any], resource: str) -> list[str]:
    return [key for key in model["resources"] if resource in _ancestors(model, key)]


def _alternatives(model: dict[str, Any], operation: str) -> list[list[str]]:
    alternatives: list[list[str]] = model["restOperations"][operation]["requires"]
    return alternatives


def missing(model: dict[str, Any], found: Iterable[Grant]) -> list[str]:
    """Every operation in the model that no alternative of its REST operation allows."""
    found = list(found)
    problems = []
    for row in model["operations"]:
        chain = _ancestors(model, row["resource"])
        held = [g for g in found if g.principal == row["principal"] and g.resource in chain]
        alternatives = _alternatives(model, row["operation"])
        if not any(all(any(g.allows(a) for g in held) for a in alt) for alt in alternatives):
            needed = " or ".join(" and ".join(alt) for alt in alternatives)
            problems.append(
                f"{row['principal']} cannot {row['operation']} on {row['resource']} "
                f"({row['by']}: {row['what']}): needs {needed}"
            )
    return problems


def excess(model: dict[str, Any], found: Iterable[Grant]) -> list[str]:
    """Every granted pattern no operation needs, unless the allow-list names it.

    A pattern is needed on an assignment's scope when an operation of that principal on the
    scope or below it lists the action in one of its alternatives; a wildcard is never needed
    by itself. A needed action also counts as excess where it reaches a resource of the same
    kind on which the principal has no operation using it (set on every secret of a vault
    when one secret needs it).
    """
    allowed = {
        (entry["principal"], entry["resource"], action.lower())
        for entry in model["allowed"]
        for action in entry["actions"]
    }
    used_by_kind: dict[str, set[str]] = {}
    for row in model["operations"]:
        kind = model["resources"][row["resource"]]["kind"]
        for alt in _alternatives(model, row["operation"]):
            used_by_kind.setdefault(kind, set()).update(a.lower() for a in alt)
    problems = []
    for grant in found:
        below = _subtree(model, grant.resource)
        for pattern in grant.patterns:
            if (grant.principal, grant.resource, pattern.lower()) in allowed:
                continue
            where = (
                f"{grant.where} ({grant.role}) gives {grant.principal} {pattern} "
                f"on {grant.resource}"
            )
            if "*" in pattern:
                problems.append(f"{where}: a wildcard, not on the allow-list")
                continue
            using = {
                row["resource"]
                for row in model["operations"]
                if row["principal"] == grant.principal
                and row["resource"] in below
                and any(
                    pattern.lower() in (a.lower() for a in alt)
                    for alt in _alternatives(model, row["operation"])
                )
            }
            if not using:
                problems.append(f"{where}: no operation needs it")
                continue
            unneeded = [
                r
                for r in below
                if r not in using
                and pattern.lower() in used_by_kind.get(model["resources"][r]["kind"], set())
            ]
            if unneeded:
                problems.append(
                    f"{where}: it also reaches {', '.join(unneeded)}, which need it not"
                )
    return problems


def unused_allowances(model: dict[str, Any], found: Iterable[Grant]) -> list[str]:
    """Allow-list entries that no assignment grants: the list stays short and true."""
    found = list(found)
    return [
        f"allowed {entry['principal']} {action} on {entry['resource']} is granted by nothing"
        for entry in model["allowed"]
        for action in entry["actions"]
        if not any(
            g.principal == entry["principal"]
            and g.resource == entry["resource"]
            and action.lower() in (p.lower() for p in g.patterns)
            for g in found
        )
    ]


def problems(root: Path = bicep.INFRA, model: dict[str, Any] | None = None) -> list[str]:
    model = model or load()
    found = grants(root, model)
    return missing(model, found) + excess(model, found) + unused_allowances(model, found)
