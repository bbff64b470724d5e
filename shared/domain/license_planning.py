"""Which licences a hire still needs and which cannot be assigned, decided from the customer's
subscribed SKUs.

Shared by the licence step (``shared/service/licensing.py``) and the operator's preview
(``ops/preview.py``), so both give the same verdict for the same subscriptions. No I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from shared.domain.model import SubscribedSku
from shared.domain.outcomes import Category, LicenseFailure

# Partner Center's code for "no units left" on a licence update.
SHORTFALL_CODE = 60012


@dataclass(frozen=True, kw_only=True)
class LicensePlan:
    """Requests to send (each one licence group's SKUs) and what cannot be assigned."""

    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    failed: tuple[LicenseFailure, ...] = ()


def plan_licenses(
    customer_tenant_id: str,
    wanted: Sequence[str],
    assigned: Collection[str],
    skus: Sequence[SubscribedSku],
) -> LicensePlan:
    """Group the SKUs still to assign by licence group; an unknown SKU or one without a free
    unit fails without a call (Partner Center would refuse the whole group's request)."""
    known = {sku.sku_id.lower(): sku for sku in skus}
    groups: dict[str, list[str]] = {}
    failed: list[LicenseFailure] = []
    for sku_id in wanted:
        if sku_id in assigned:
            continue
        sku = known.get(sku_id.lower())
        if sku is None:
            failed.append(unknown_sku(customer_tenant_id, sku_id))
        elif sku.available_units <= 0:
            failed.append(shortfall(customer_tenant_id, sku_id, sku.name))
        else:
            groups.setdefault(sku.license_group_id, []).append(sku_id)
    return LicensePlan(
        groups=tuple((group, tuple(ids)) for group, ids in groups.items()),
        failed=tuple(failed),
    )


def unknown_sku(customer_tenant_id: str, sku_id: str) -> LicenseFailure:
    return LicenseFailure(
        sku_id=sku_id,
        category=Category.VALIDATION,
        message=f"customer {customer_tenant_id} has no subscription for SKU {sku_id}: buy the "
        "product or correct the HR record, then replay from the poison queue",
    )


def shortfall(customer_tenant_id: str, sku_id: str, name: str | None = None) -> LicenseFailure:
    product = f" ({name})" if name else ""
    return LicenseFailure(
        sku_id=sku_id,
        category=Category.VALIDATION,
        message=f"no unit of SKU {sku_id}{product} is left in customer {customer_tenant_id}: "
        "buy more units, then replay from the poison queue (the user exists; the replay only "
        "assigns the missing licences)",
        code=SHORTFALL_CODE,
    )
