"""Just enough of Bicep's syntax to read the template's settings, parameters and roles as text.

The Bicep CLI cannot be installed here; checkov (scripts/check-infra) proves the files parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:")
_RESOURCE = re.compile(r"^resource\s+(\w+)\s+'([^'@]+)@[^']+'", re.MULTILINE)
_PARAM = re.compile(r"^param\s+(\w+)\s+(\w+)(?:\s*=\s*(.+))?$", re.MULTILINE)


def text(name: str) -> str:
    return (INFRA / name).read_text(encoding="utf-8")


def without_comments(source: str) -> str:
    """The source with // comments and #directives blanked (not inside strings)."""
    source = re.sub(r"(?m)^[ \t]*#.*$", "", source)
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(source):
        char = source[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(source[i + 1])
                i += 1
            elif char == "'":
                in_string = False
        elif char == "'":
            in_string = True
            out.append(char)
        elif source.startswith("//", i):
            end = source.find("\n", i)
            end = len(source) if end == -1 else end
            out.append(" " * (end - i))
            i = end
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def block_after(source: str, anchor: str) -> str:
    """The text between the brace that follows `anchor` and its partner (strings skipped)."""
    source = without_comments(source)
    start = source.index(anchor)
    opening = source.index("{", start)
    depth = 0
    in_string = False
    i = opening
    while i < len(source):
        char = source[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == "'":
                in_string = False
        elif char == "'":
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return source[opening + 1 : i]
        i += 1
    raise ValueError(f"no closing brace after {anchor!r}")


def top_level_keys(block: str) -> list[str]:
    """Keys of an object literal's own members (not of nested objects)."""
    keys: list[str] = []
    depth = 0
    in_string = False
    line_start = True
    i = 0
    while i < len(block):
        char = block[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == "'":
                in_string = False
        elif char == "'":
            in_string = True
        elif char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
        elif char == "\n":
            line_start = True
            i += 1
            continue
        elif line_start and depth == 0 and not char.isspace():
            match = _KEY.match(block, i)
            if match:
                keys.append(match.group(1))
        if not char.isspace():
            line_start = False
        i += 1
    return keys


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str | None


def params(name: str) -> dict[str, Param]:
    found = _PARAM.findall(without_comments(text(name)))
    return {
        p_name: Param(p_name, p_type, default.strip() if default else None)
        for p_name, p_type, default in found
    }


def literal(value: str | None) -> str | int | bool | None:
    """A Bicep literal default: 'text', 12, true/false; None for an expression."""
    if value is None:
        return None
    if value.startswith("'") and value.endswith("'") and "${" not in value:
        return value[1:-1].replace("\\'", "'")
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if value in {"true", "false"}:
        return value == "true"
    return None


def resources(name: str) -> dict[str, str]:
    """Symbolic name -> resource type, for every resource the file declares."""
    return dict(_RESOURCE.findall(without_comments(text(name))))


@dataclass(frozen=True)
class RoleAssignment:
    """One `Microsoft.Authorization/roleAssignments` resource, as written in the template.

    ``role`` is a built-in role id (the file's `var roles = {...}`) or, for a custom role, the
    name of the custom-roles.bicep resource: a module receives a custom role's id as a
    parameter named after it (`queueMessageProcessorRoleId` is `queueMessageProcessorRole`).
    ``scope`` is `file#symbol` of the resource the role is scoped to.
    """

    file: str
    symbol: str
    role: str
    custom: bool
    scope: str
    scope_type: str
    principal: str

    @property
    def role_id(self) -> str:
        return self.role


@dataclass(frozen=True)
class CustomRole:
    symbol: str
    actions: tuple[str, ...]
    data_actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    not_data_actions: tuple[str, ...]


def _string_list(block: str, key: str) -> tuple[str, ...]:
    match = re.search(rf"(?<![A-Za-z]){key}:\s*\[([^\]]*)\]", block)
    return tuple(re.findall(r"'([^']*)'", match.group(1))) if match else ()


def custom_roles(root: Path = INFRA) -> dict[str, CustomRole]:
    """Symbol -> permissions of every role definition the template creates."""
    found: dict[str, CustomRole] = {}
    for path in sorted(root.rglob("*.bicep")):
        source = without_comments(path.read_text(encoding="utf-8"))
        for symbol, kind in _RESOURCE.findall(source):
            if kind != "Microsoft.Authorization/roleDefinitions":
                continue
            body = block_after(source, f"resource {symbol} ")
            found[symbol] = CustomRole(
                symbol=symbol,
                actions=_string_list(body, "actions"),
                data_actions=_string_list(body, "dataActions"),
                not_actions=_string_list(body, "notActions"),
                not_data_actions=_string_list(body, "notDataActions"),
            )
    return found


def role_assignments(root: Path = INFRA) -> list[RoleAssignment]:
    """Every role assignment under `root` (infra/ by default), with role, scope and principal."""
    found: list[RoleAssignment] = []
    for path in sorted(root.rglob("*.bicep")):
        name = path.relative_to(root).as_posix()
        source = without_comments(path.read_text(encoding="utf-8"))
        declared = dict(_RESOURCE.findall(source))
        role_ids = {}
        if "var roles = {" in source:
            for key, role_id in re.findall(
                r"(\w+):\s*'([0-9a-f-]{36})'", block_after(source, "var roles = {")
            ):
                role_ids[key] = role_id
        for symbol, kind in declared.items():
            if kind != "Microsoft.Authorization/roleAssignments":
                continue
            body = block_after(source, f"resource {symbol} ")
            scope = re.search(r"^\s*scope:\s*(\w+)\s*$", body, re.MULTILINE)
            built_in = re.search(r"roleDefinitions',\s*roles\.(\w+)\)", body)
            custom = re.search(r"^\s*roleDefinitionId:\s*(\w+)RoleId\s*$", body, re.MULTILINE)
            principal = re.search(r"^\s*principalId:\s*(\w+)\s*$", body, re.MULTILINE)
            assert scope and (built_in or custom) and principal, (
                f"{name}: {symbol} is not in the usual shape"
            )
            found.append(
                RoleAssignment(
                    file=name,
                    symbol=symbol,
                    role=role_ids[built_in.group(1)] if built_in else f"{custom.group(1)}Role",  # type: ignore[union-attr]
                    custom=built_in is None,
                    scope=f"{name}#{scope.group(1)}",
                    scope_type=declared[scope.group(1)],
                    principal=principal.group(1),
                )
            )
    return found
