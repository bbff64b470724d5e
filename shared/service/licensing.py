"""The licence step after the user exists: assign what the ledger does not list yet.

A replay of a hire whose user exists does only this. Licences that cannot be assigned never
undo the user: the outcome stays a success and lists them, and a poison copy lets an operator
replay once the cause is fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.domain.errors import LedgerConflict, ProvisioningError, Refused
from shared.domain.events import HireEvent
from shared.domain.license_planning import SHORTFALL_CODE, plan_licenses, shortfall
from shared.domain.outcomes import Category, Failure, LicenseFailure, LicenseReport, Outcome
from shared.domain.ports import HireLedger, PartnerCenter, PoisonSink
from shared.service.invocation import Invocation

logger = logging.getLogger("hire_provisioning")


class LicenseStep:
    def __init__(
        self,
        *,
        partner_center: PartnerCenter,
        ledger: HireLedger,
        poison: PoisonSink,
        now: Callable[[], datetime],
    ) -> None:
        self._partner_center = partner_center
        self._ledger = ledger
        self._poison = poison
        self._now = now

    def assign(self, event: HireEvent, user_outcome: Outcome, invocation: Invocation) -> Outcome:
        """Assign the requested licences the ledger does not list yet (a replay's only work)."""
        record = self._ledger.get(event.event_id)
        if record is None:
            raise LedgerConflict("the hire's record disappeared")
        assigned = list(record.licenses_assigned)
        wanted = list(event.sku_ids)
        failed: list[LicenseFailure] = []
        customer = event.customer_tenant_id
        user_id = str(user_outcome.user_id)
        if any(sku not in assigned for sku in wanted):
            skus = invocation.call(
                self._partner_center.subscribed_skus,
                customer,
                correlation_id=event.correlation_guid,
            )
            plan = plan_licenses(customer, wanted, assigned, skus)
            # A SKU the list shows without units is tried alone: the user may hold it already
            # (that takes no unit), and it must not sink the rest of its licence group.
            requests = [list(ids) for _, ids in plan.groups]
            requests += [[f.sku_id] for f in plan.failed if f.code == SHORTFALL_CODE]
            failed += [f for f in plan.failed if f.code != SHORTFALL_CODE]
            while requests:
                ids = requests.pop(0)
                try:
                    invocation.call(
                        self._partner_center.assign_licenses,
                        customer,
                        user_id,
                        ids,
                        correlation_id=event.correlation_guid,
                    )
                except Refused as refusal:
                    if refusal.failure.code == SHORTFALL_CODE and len(ids) > 1:
                        requests += [[sku] for sku in ids]  # which one is short? one by one
                        continue
                    failed += [_refused(customer, sku, refusal) for sku in ids]
                    continue
                assigned += [sku for sku in ids if sku not in assigned]
                record = self._ledger.update(record.licences_assigned(tuple(assigned), self._now()))
        order = {sku: index for index, sku in enumerate(wanted)}
        outcome = replace(
            user_outcome,
            licenses=LicenseReport(
                assigned=tuple(sku for sku in wanted if sku in assigned),
                failed=tuple(sorted(failed, key=lambda f: order.get(f.sku_id, 0))),
            ),
        )
        self._ledger.update(record.outcome_noted(outcome.as_message(), self._now()))
        return outcome

    def given_up(self, event: HireEvent, user_outcome: Outcome, failure: Failure) -> Outcome:
        """The user exists but the licence step kept failing: report what is missing."""
        assigned: tuple[str, ...] = ()
        try:
            record = self._ledger.get(event.event_id)
            assigned = record.licenses_assigned if record else ()
        except Exception as error:  # the ledger may be what failed; assume nothing assigned
            logger.info("could not read the licences of %s (%s)", event.event_id, type(error))
        return replace(
            user_outcome,
            licenses=LicenseReport(
                assigned=tuple(sku for sku in event.sku_ids if sku in assigned),
                failed=tuple(
                    LicenseFailure(
                        sku_id=sku,
                        category=failure.category,
                        message=f"not assigned: {failure.message}; replay from the poison queue",
                        code=failure.code,
                    )
                    for sku in event.sku_ids
                    if sku not in assigned
                ),
            ),
        )

    def poison_failures(self, document: dict[str, Any], outcome: Outcome, attempts: int) -> None:
        """A poison copy for licences that failed, so a replay assigns them (and creates
        nothing); written before the outcome, like every poison copy."""
        if outcome.licenses is None or not outcome.licenses.failed:
            return
        first = outcome.licenses.failed[0]
        details = "; ".join(f"{f.sku_id}: {f.message}" for f in outcome.licenses.failed)
        self._poison.poison_event(
            document,
            Failure(
                category=first.category,
                message=f"user {outcome.user_id} ({outcome.user_principal_name}) is "
                f"{outcome.status.value} but lacks {len(outcome.licenses.failed)} licence(s): "
                f"{details}",
                code=first.code,
            ),
            attempts=attempts,
        )


def _refused(customer: str, sku_id: str, refusal: ProvisioningError) -> LicenseFailure:
    failure = refusal.failure
    if failure.code == SHORTFALL_CODE:
        return shortfall(customer, sku_id)
    if failure.category is Category.PERMISSION:
        return LicenseFailure(
            sku_id=sku_id,
            category=Category.PERMISSION,
            message=f"the partner user may not assign licences in customer {customer}: grant a "
            "GDAP role License Administrator, User Administrator or Directory Writers, then "
            "replay from the poison queue",
            code=failure.code,
        )
    return LicenseFailure(
        sku_id=sku_id,
        category=failure.category,
        message=f"Partner Center refused SKU {sku_id}: {failure.message}",
        code=failure.code,
    )
