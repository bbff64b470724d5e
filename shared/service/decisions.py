"""The one structured line per decision (redeliveries included), and its telemetry twin.

Fields are named here, by allow-list: nothing of the event beyond its identifiers, and never a
secret, reaches the line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from shared.domain.errors import ProvisioningError
from shared.domain.events import HireEvent
from shared.domain.outcomes import Failure, LicenseReport, Outcome
from shared.domain.ports import Telemetry
from shared.service.invocation import Invocation

logger = logging.getLogger("hire_provisioning")


class DecisionLog:
    def __init__(self, *, telemetry: Telemetry, monotonic: Callable[[], float]) -> None:
        self._telemetry = telemetry
        self._monotonic = monotonic

    def decided(
        self, outcome: Outcome, *, started: float, invocation: Invocation, message_id: str | None
    ) -> None:
        self._write(
            status=outcome.status.value,
            failure=outcome.failure,
            event_id=outcome.event_id,
            correlation_id=outcome.correlation_id,
            customer=outcome.customer_tenant_id,
            started=started,
            invocation=invocation,
            message_id=message_id,
            licenses=outcome.licenses,
        )

    def redelivering(
        self,
        event: HireEvent,
        error: ProvisioningError,
        *,
        invocation: Invocation,
        message_id: str | None,
    ) -> None:
        self._write(
            status="retrying",
            failure=error.failure,
            event_id=event.event_id,
            correlation_id=event.correlation_id,
            customer=event.customer_tenant_id,
            started=None,
            invocation=invocation,
            message_id=message_id,
        )

    def _write(
        self,
        *,
        status: str,
        failure: Failure | None,
        event_id: str | None,
        correlation_id: str | None,
        customer: str | None,
        started: float | None,
        invocation: Invocation,
        message_id: str | None,
        licenses: LicenseReport | None = None,
    ) -> None:
        fields: dict[str, object] = {
            "eventId": event_id,
            "correlationId": correlation_id,
            "requestId": invocation.request_id,
            "messageId": message_id,
            "customer": customer,
            "status": status,
            "category": failure.category.value if failure else None,
            "delivery": invocation.delivery_number,
            "ledgerState": invocation.state.value if invocation.state else None,
            "waitedForOtherDelivery": invocation.waited_for_other,
            "calls": invocation.calls,
        }
        if started is not None:
            fields["durationMs"] = round((self._monotonic() - started) * 1000)
        if failure:
            fields["error"] = failure.message
        if licenses is not None:
            fields["licensesAssigned"] = len(licenses.assigned)
            fields["licensesFailed"] = [f.sku_id for f in licenses.failed]
        short = licenses is not None and bool(licenses.failed)
        self._telemetry.decided(fields)
        logger.log(
            logging.INFO if failure is None and not short else logging.WARNING,
            "decision %s",
            json.dumps(fields, ensure_ascii=False),
            extra={"decision": fields},
        )
