"""Local stand-ins for Partner Center, Entra ID and Key Vault over HTTPS, with fault injection.

Development only (never deployed). See README.md in this folder.
"""

from .entra import EntraConfig, EntraStandIn
from .faults import Fault, FaultKind
from .key_vault import KeyVaultConfig, KeyVaultStandIn
from .partner_center import Domain, PartnerCenterConfig, PartnerCenterStandIn
from .service import RecordedRequest
from .stack import PartnerSeed, StandInStack

__all__ = [
    "Domain",
    "EntraConfig",
    "EntraStandIn",
    "Fault",
    "FaultKind",
    "KeyVaultConfig",
    "KeyVaultStandIn",
    "PartnerCenterConfig",
    "PartnerCenterStandIn",
    "PartnerSeed",
    "RecordedRequest",
    "StandInStack",
]
