"""The deployment installs exactly what CI tested: requirements.txt (the deployed lock) pins,
with hashes, every package the app needs on this Python, at the version installed here from
constraints.txt. CI runs this on Python 3.11 and 3.13, so each deployed Python is checked
against its own installed set. scripts/lock-requirements regenerates the lock;
scripts/build-deploy-package --install proves it installs (needs PyPI)."""

from __future__ import annotations

import importlib.metadata
import re
import sys

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devtools import deploy_lock, deploy_package
from tests.infra import bicep

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def lock() -> list[deploy_package.Pin]:
    return deploy_package.parse_lock((bicep.ROOT / "requirements.txt").read_text("utf-8"))


def requirement_lines(name: str) -> list[Requirement]:
    text = (bicep.ROOT / name).read_text(encoding="utf-8")
    return [
        Requirement(line.split("#", 1)[0].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    ]


def applies(requirement: Requirement, extra: str = "") -> bool:
    environment = {**default_environment(), "extra": extra}
    return requirement.marker is None or requirement.marker.evaluate(environment)  # type: ignore[arg-type]


def installed_closure() -> dict[str, str]:
    """Every distribution requirements.in needs on this Python, at its installed version."""
    found: dict[str, str] = {}
    todo = [(r, frozenset(r.extras)) for r in requirement_lines("requirements.in") if applies(r)]
    while todo:
        requirement, extras = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in found:
            continue
        distribution = importlib.metadata.distribution(requirement.name)
        found[key] = distribution.version
        for line in distribution.requires or []:
            child = Requirement(line)
            if any(applies(child, extra) for extra in {"", *extras}):
                todo.append((child, frozenset(child.extras)))
    return found


def test_the_lock_pins_exactly_the_installed_closure_on_this_python() -> None:
    pinned = {canonicalize_name(p.name): p.version for p in lock() if p.applies(PYTHON)}
    assert pinned == installed_closure()


def test_every_pin_is_the_constraints_pin_and_hashed() -> None:
    constraints = [r for r in requirement_lines("constraints.txt")]
    for pin in lock():
        assert pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), pin
        for python in deploy_lock.TARGETS:
            if not pin.applies(python):
                continue
            matching = [
                r
                for r in constraints
                if canonicalize_name(r.name) == canonicalize_name(pin.name)
                and (r.marker is None or r.marker.evaluate({"python_version": python}))
            ]
            assert [str(r.specifier) for r in matching] == [f"=={pin.version}"], (pin, python)


def test_the_direct_dependencies_are_pinned_alike_in_requirements_in_and_the_lock() -> None:
    for python in deploy_lock.TARGETS:
        locked = {canonicalize_name(p.name): p.version for p in lock() if p.applies(python)}
        for requirement in requirement_lines("requirements.in"):
            if requirement.marker and not requirement.marker.evaluate({"python_version": python}):
                continue
            assert str(requirement.specifier) == f"=={locked[canonicalize_name(requirement.name)]}"


def test_the_lock_covers_each_deployed_python_and_says_how_it_is_made() -> None:
    text = (bicep.ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "scripts/lock-requirements" in text.splitlines()[0]
    assert deploy_lock.TARGETS == ("3.11", "3.13")
    assert deploy_lock.marker(["3.11"]) == 'python_version < "3.13"'
    assert deploy_lock.marker(["3.13"]) == 'python_version >= "3.13"'
    assert deploy_lock.marker(["3.11", "3.13"]) == ""


def test_a_clean_deploy_package_holds_the_pinned_set_and_no_development_material() -> None:
    files = deploy_package.tracked()
    packaged = deploy_package.package_files(files)
    assert deploy_package.problems(packaged, files["requirements.txt"]) == []
    assert packaged["requirements.txt"] == (bicep.ROOT / "requirements.txt").read_bytes()


def test_the_package_check_finds_an_unhashed_or_missing_lock() -> None:
    files = deploy_package.tracked()
    packaged = deploy_package.package_files(files)
    unhashed = dict(packaged, **{"requirements.txt": b"requests==2.34.2\n"})
    assert "requests==2.34.2 has no hash" in deploy_package.problems(
        unhashed, unhashed["requirements.txt"]
    )
    without = {path: content for path, content in packaged.items() if path != "requirements.txt"}
    assert "missing requirements.txt" in deploy_package.problems(without, files["requirements.txt"])
    leaky = dict(packaged, **{"tests/conftest.py": b""})
    assert "should not be deployed: tests/conftest.py" in deploy_package.problems(
        leaky, files["requirements.txt"]
    )
