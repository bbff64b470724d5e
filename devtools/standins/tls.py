"""The stand-ins' certificate authority: one CA per stack, made at start-up with trustme.

Callers trust the stand-ins through ``REQUESTS_CA_BUNDLE`` (requests, msal and azure-core all
honour it). Two PEM files are written: the CA alone, and a bundle of the CA plus the public
roots requests trusts by default (certifi's), so a process pointed at the bundle can still
reach real HTTPS endpoints if it needs to.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme

SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class StandInCertificates:
    ca_file: Path
    ca_bundle_file: Path
    server_context: ssl.SSLContext


def create_certificates(directory: Path) -> StandInCertificates:
    """Make a fresh CA and a server certificate for loopback, and write the PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="hire-provisioning local stand-ins")
    ca_file = directory / "standins-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    ca_bundle_file = directory / "standins-ca-bundle.pem"
    public_roots = Path(certifi.where()).read_text(encoding="ascii")
    ca_pem = authority.cert_pem.bytes().decode("ascii")
    ca_bundle_file.write_text(ca_pem + "\n" + public_roots, encoding="ascii")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    authority.issue_cert(*SERVER_NAMES).configure_cert(context)
    return StandInCertificates(ca_file, ca_bundle_file, context)
