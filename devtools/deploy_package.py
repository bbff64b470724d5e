"""The deployment package as `azd deploy` builds it, from a clean copy of a commit.

azd (like Core Tools) zips the project folder minus what `.funcignore` names (gitignore
rules); Flex Consumption's remote build then runs `pip install -r requirements.txt`. This
module builds the same zip from `git archive <commit>` (what a fresh clone holds: nothing
untracked, nothing local), checks what is in it, and with `--install` installs the package's
requirements.txt the way the remote build would, on each deployed Python, in pip's
--require-hashes mode, and compares what was installed with the pins.

    python -m devtools.deploy_package                 # build and check dist/deploy-<sha>.zip
    python -m devtools.deploy_package --install       # also install it on 3.11 and 3.13
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devtools.deploy_lock import ROOT, TARGETS, interpreter

# What the package must hold for the app to run, and what it must never hold.
REQUIRED = ("function_app.py", "host.json", "requirements.txt", "shared/__init__.py")
FORBIDDEN_PREFIXES = (
    "infra/",
    "tests/",
    "devtools/",
    "ops/",
    "scripts/",
    "benchmarks/",
    "docs/",
    ".ci/",
    "node_modules/",
)
FORBIDDEN_FILES = (
    "azure.yaml",
    "requirements.in",
    "requirements-dev.txt",
    "constraints.txt",
    "constraints-checkov.txt",
    "local.settings.json",
    "local.settings.sample.json",
    "package.json",
    "package-lock.json",
    "pyproject.toml",
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str
    hashes: tuple[str, ...]

    def applies(self, python: str) -> bool:
        requirement = Requirement(
            f"{self.name}=={self.version}" + (f"; {self.marker}" if self.marker else "")
        )
        return requirement.marker is None or requirement.marker.evaluate({"python_version": python})


def parse_lock(text: str) -> list[Pin]:
    """The pins of a hashed requirements file (one requirement per logical line)."""
    pins = []
    logical = text.replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, *hashes = line.split(" --hash=")
        requirement = Requirement(head.strip())
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        pins.append(
            Pin(
                name=requirement.name,
                version=specifier.version,
                marker=str(requirement.marker) if requirement.marker else "",
                hashes=tuple(h.strip() for h in hashes),
            )
        )
    return pins


def archive(commit: str = "HEAD", root: Path = ROOT) -> dict[str, bytes]:
    """Path -> content of every file `git archive` puts in `commit` (a clean clone's files)."""
    tar = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    files = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as bundle:
        for member in bundle.getmembers():
            if member.isfile():
                extracted = bundle.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return files


def tracked(root: Path = ROOT) -> dict[str, bytes]:
    """Path -> content of every tracked file as it is in the working tree (uncommitted edits
    included): what a clone would hold once they are committed."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode("utf-8")
    return {
        path: (root / path).read_bytes()
        for path in listed.split("\0")
        if path and (root / path).is_file()
    }


def package_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files `.funcignore` lets into the package (gitignore semantics, as azd reads it)."""
    rules = files.get(".funcignore", b"").decode("utf-8").splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(rules)
    return {path: content for path, content in files.items() if not spec.match_file(path)}


def problems(packaged: dict[str, bytes], lock: bytes) -> list[str]:
    found = [f"missing {path}" for path in REQUIRED if path not in packaged]
    found += [
        f"should not be deployed: {path}"
        for path in sorted(packaged)
        if path.startswith(FORBIDDEN_PREFIXES) or path in FORBIDDEN_FILES
    ]
    if packaged.get("requirements.txt") != lock:
        found.append("requirements.txt in the package differs from the commit's")
    pins = parse_lock(packaged.get("requirements.txt", b"").decode("utf-8"))
    found += [f"{pin.name}=={pin.version} has no hash" for pin in pins if not pin.hashes]
    for python in TARGETS:
        if not any(pin.applies(python) for pin in pins):
            found.append(f"no pin applies on Python {python}")
    return found


def write_zip(packaged: dict[str, bytes], destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(packaged):
            bundle.writestr(path, packaged[path])


def install_and_compare(packaged: dict[str, bytes], pythons: Iterable[str] = TARGETS) -> list[str]:
    """Install the package's requirements.txt as the remote build would, on each Python, and
    compare what pip installed with the pins that apply there."""
    found = []
    pins = parse_lock(packaged["requirements.txt"].decode("utf-8"))
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_bytes(packaged["requirements.txt"])
        for python in pythons:
            target = Path(scratch) / f"site-{python}"
            subprocess.run(
                [
                    interpreter(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--require-hashes",
                    "--no-deps",
                    "--target",
                    str(target),
                    "-r",
                    str(requirements),
                ],
                check=True,
                env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
            )
            installed = {}
            for info in target.glob("*.dist-info"):
                name, _, version = info.name[: -len(".dist-info")].rpartition("-")
                installed[canonicalize_name(name)] = version
            expected = {canonicalize_name(p.name): p.version for p in pins if p.applies(python)}
            if installed != expected:
                differing = sorted(set(installed.items()) ^ set(expected.items()))
                found.append(f"Python {python}: installed and pinned differ in {differing}")
            else:
                print(
                    f"deploy_package: Python {python}: {len(installed)} packages, exactly the pins"
                )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--output", type=Path, default=None, help="zip path (default dist/)")
    parser.add_argument("--install", action="store_true", help="pip install it on 3.11 and 3.13")
    arguments = parser.parse_args(argv)
    files = archive(arguments.commit)
    packaged = package_files(files)
    found = problems(packaged, files.get("requirements.txt", b""))
    if arguments.install and not found:
        found += install_and_compare(packaged)
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", arguments.commit],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    output = arguments.output or ROOT / "dist" / f"deploy-{sha}.zip"
    write_zip(packaged, output)
    if found:
        print("deploy_package:\n  " + "\n  ".join(found), file=sys.stderr)
        return 1
    print(f"deploy_package: {output} holds {len(packaged)} files and the pinned requirements.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
