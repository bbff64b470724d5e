"""host.json's functionTimeout is far above the longest an invocation can take."""

from __future__ import annotations

import json
from datetime import timedelta

from shared.adapters.credentials import MsalTokenExchange
from shared.adapters.partner_center import LOOKUP_BUDGET, Timeouts
from shared.domain.model import LATEST_APPLY_AFTER_CALL
from shared.hostconfig import HOST_JSON
from shared.service.provisioning import RetryPolicy

# Key Vault calls as composition.py configures them: connect 5 s, read 20 s, no SDK retries.
VAULT_CALL = 5 + 20


def function_timeout() -> timedelta:
    hours, minutes, seconds = json.loads(HOST_JSON.read_text())["functionTimeout"].split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def test_function_timeout_leaves_room_for_the_slowest_invocation() -> None:
    partner_center = Timeouts()
    call = partner_center.connect + partner_center.read
    # The retry budget covers every attempt but the last, which may start just before it
    # ends and then, at worst, waits out every call it makes: three credential reads, the
    # token exchange, reading and writing the password, the create, and two paged lookups
    # (active, then deleted users), each stopped by its own budget plus its last page.
    last_attempt = (
        3 * VAULT_CALL
        + MsalTokenExchange(authority_host="https://x", tenant_id="t")._timeout
        + 2 * VAULT_CALL
        + call
        + 2 * (LOOKUP_BUDGET + call)
    )
    slowest = RetryPolicy().budget + last_attempt
    assert timedelta(seconds=slowest * 1.25) <= function_timeout() <= timedelta(minutes=10)


def test_a_create_call_is_not_counted_past_the_longest_invocation() -> None:
    # F15: a user made more than LATEST_APPLY_AFTER_CALL after a hire's last create call was
    # not made by it. A retry may send a call its invocation wrote earlier, so the bound must
    # cover a whole invocation.
    assert function_timeout() <= LATEST_APPLY_AFTER_CALL
