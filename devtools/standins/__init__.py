"""Local stand-ins for Partner Center, Entra ID, Key Vault and Microsoft Graph
over HTTPS, with fault injection.

Development only (never deployed). See README.md in this folder.
"""

from .entra import EntraConfig, EntraStandIn
from .faults import Fault, FaultKind
from .graph import CONSENT_VARIANTS, GraphConfig, GraphStandIn
from .key_vault import KeyVaultConfig, KeyVaultStandIn
from .partner_center import Domain, PartnerCenterConfig, PartnerCenterStandIn
from .service import RecordedRequest
from .stack import PartnerSeed, StandInStack

__all__ = [
    "CONSENT_VARIANTS",
    "Domain",
    "EntraConfig",
    "EntraStandIn",
    "Fault",
    "FaultKind",
    "GraphConfig",
    "GraphStandIn",
    "KeyVaultConfig",
    "KeyVaultStandIn",
    "PartnerCenterConfig",
    "PartnerCenterStandIn",
    "PartnerSeed",
    "RecordedRequest",
    "StandInStack",
]
