"""Which UPN a hire would use, and whose it is, decided from read-only look-ups.

Shared by the provisioning decision and the operator's preview (``ops/preview.py``), so both
give the same verdict for the same state of the customer tenant. No I/O of its own: the
caller passes the look-up (so it counts and paces the calls).

The identity rule for a UPN found held before any create of this hire was sent: only a user
with exactly the event's ``immutableId`` is this hire's (active: it exists already; deleted:
a rehire, restored). Anyone else holding it, active or deleted, is someone else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.domain.errors import DirectoryUnavailable
from shared.domain.events import HireEvent
from shared.domain.model import FoundUser, HireRecord, HireState, SendKind
from shared.domain.ports import UpnDirectory
from shared.domain.upn import MAX_COUNTER, UpnGenerationError, candidate, render_local_part

Lookup = Callable[[str, bool], FoundUser | None]
"""(upn, inactive) -> the user holding it, active ones or deleted ones."""


class UpnVerdict(StrEnum):
    FREE = "free"  # nobody holds it: create
    THIS_HIRES = "this_hires"  # an active user with this event's immutableId
    REHIRE = "rehire"  # a deleted user with this event's immutableId: restore
    HELD = "held"  # an active user who is someone else
    HELD_DELETED = "held_deleted"  # a deleted user who is someone else
    EXHAUSTED = "exhausted"  # every generated candidate is held by someone else


@dataclass(frozen=True, kw_only=True)
class UpnChoice:
    upn: str
    verdict: UpnVerdict
    holder: FoundUser | None = None
    generated: bool = False
    # Generated candidates passed over, with who holds each (for messages and the preview).
    skipped: tuple[tuple[str, FoundUser], ...] = ()


def choose_upn(
    event: HireEvent,
    template: str,
    lookup: Lookup,
    *,
    recorded: str | None = None,
    check_given_upn: bool = True,
) -> UpnChoice:
    """The UPN this hire uses and what holds it.

    An event with a UPN gets its verdict for that UPN. Without one, the UPN recorded in the
    ledger (``recorded``) is tried first, then ``UPN_TEMPLATE``'s candidates in order, passing
    over those someone else holds. Raises ``UpnGenerationError`` when the names leave no UPN.

    ``check_given_upn=False`` leaves out the look-up of active users for a UPN the event gives:
    the decision does so when the event has an ``immutableId``, because then the create's own
    duplicate answer settles who holds it (a whole user list is read only when needed).
    """
    given = event.user.user_principal_name
    if given is not None:
        return _verdict(event, given, lookup, generated=False, check_active=check_given_upn)
    skipped: list[tuple[str, FoundUser]] = []
    tried: set[str] = set()
    for upn in _candidates(event, template, recorded):
        if upn.casefold() in tried:
            continue
        tried.add(upn.casefold())
        choice = _verdict(event, upn, lookup, generated=True)
        if choice.verdict in (UpnVerdict.HELD, UpnVerdict.HELD_DELETED):
            assert choice.holder is not None
            skipped.append((upn, choice.holder))
            continue
        return UpnChoice(
            upn=upn,
            verdict=choice.verdict,
            holder=choice.holder,
            generated=True,
            skipped=tuple(skipped),
        )
    last = skipped[-1][0] if skipped else ""
    return UpnChoice(upn=last, verdict=UpnVerdict.EXHAUSTED, generated=True, skipped=tuple(skipped))


def generated_candidates(event: HireEvent, template: str) -> Iterator[str]:
    """``UPN_TEMPLATE``'s candidates for this event: jane.doe@d, jane.doe2@d ... jane.doe99@d."""
    user = event.user
    local = render_local_part(
        template,
        {
            "firstName": user.first_name,
            "lastName": user.last_name,
            "displayName": user.display_name,
            "immutableId": user.immutable_id,
        },
    )
    for n in range(1, MAX_COUNTER + 1):
        yield candidate(local, user.domain, n)


def _candidates(event: HireEvent, template: str, recorded: str | None) -> Iterator[str]:
    candidates = list(generated_candidates(event, template))
    # Only a UPN this event's template could have chosen: after a republish with another
    # domain or other names, a recorded UPN of the old event is not this one's.
    if recorded and recorded.casefold() in {upn.casefold() for upn in candidates}:
        yield recorded
    yield from candidates


def _verdict(
    event: HireEvent, upn: str, lookup: Lookup, *, generated: bool, check_active: bool = True
) -> UpnChoice:
    wanted = event.user.immutable_id
    active = lookup(upn, False) if check_active else None
    if active is not None:
        same = wanted is not None and active.immutable_id == wanted
        verdict = UpnVerdict.THIS_HIRES if same else UpnVerdict.HELD
        return UpnChoice(upn=upn, verdict=verdict, holder=active, generated=generated)
    if wanted is None and not generated:
        # No immutableId: no rehire is possible, and a deleted holder shows itself as a
        # duplicate on create, so one look-up fewer on the common path.
        return UpnChoice(upn=upn, verdict=UpnVerdict.FREE, generated=generated)
    deleted = lookup(upn, True)
    if deleted is None:
        return UpnChoice(upn=upn, verdict=UpnVerdict.FREE, generated=generated)
    same = wanted is not None and deleted.immutable_id == wanted
    verdict = UpnVerdict.REHIRE if same else UpnVerdict.HELD_DELETED
    return UpnChoice(upn=upn, verdict=verdict, holder=deleted, generated=generated)


class Step(StrEnum):
    """What a delivery does next with a hire, read off its record (``step_for``)."""

    ANSWER = "answer"  # say the recorded success again; nothing is called
    CHOOSE_AND_SEND = "choose_and_send"  # choose and check the UPN, then create or restore
    RESEND_CREATE = "resend_create"  # send the unsettled create again, settle by the identity rule
    FINISH_RESTORE = "finish_restore"  # restore the deleted user if needed, reset its password
    # A definite refusal came last: finish an unsettled restore, else send an unsettled create
    # again, else choose and send anew (a new MS-RequestId).
    RETRY = "retry"


# The state machine's one table: the hire's state -> the step a delivery takes. The docs'
# table (docs/design.md, "The hire state machine") is checked against it by a test.
STEP_OF_STATE: dict[HireState, Step] = {
    HireState.NEW: Step.CHOOSE_AND_SEND,
    HireState.CREATING: Step.RESEND_CREATE,
    HireState.RESTORING: Step.FINISH_RESTORE,
    HireState.REJECTED: Step.RETRY,
    HireState.CREATED: Step.ANSWER,
    HireState.EXISTING: Step.ANSWER,
    HireState.RESTORED: Step.ANSWER,
}


def step_for(record: HireRecord) -> Step:
    """The step for this record; ``RETRY`` resolved by what is still unsettled."""
    step = STEP_OF_STATE[record.state]
    if step is not Step.RETRY:
        return step
    if record.pending_restore is not None:
        return Step.FINISH_RESTORE
    if record.pending_creates:
        return Step.RESEND_CREATE
    return Step.CHOOSE_AND_SEND


def identity_changes(event: HireEvent, record: HireRecord, template: str) -> list[str]:
    """Which members of ``event`` differ from what an unsettled send of the hire used
    (CONTRACT section 5): empty when the event may go on, or when nothing is unsettled."""
    pending = record.pending_restore or (
        record.pending_creates[-1] if record.pending_creates else None
    )
    if pending is None:
        return []
    changed: list[str] = []
    if event.customer_tenant_id != record.customer_tenant_id:
        changed.append("customerTenantId")
    given = event.user.user_principal_name
    recorded = pending.user_principal_name.casefold()
    if given is not None:
        if given.casefold() != recorded:
            changed.append("userPrincipalName")
    elif pending.kind is SendKind.CREATE and recorded not in {
        upn.casefold() for upn in generated_candidates(event, template)
    }:
        changed.append("generated userPrincipalName (names, upnDomain)")
    if event.user.immutable_id != pending.immutable_id:
        changed.append("immutableId")
    return changed


def exhausted_message(event: HireEvent, choice: UpnChoice) -> str:
    first = choice.skipped[0][0] if choice.skipped else "?"
    return (
        f"every generated userPrincipalName from {first} to the counter {MAX_COUNTER} is held "
        f"by someone else in customer {event.customer_tenant_id}: give the user a "
        "userPrincipalName in the HR record and republish"
    )


def generation_failure_message(error: UpnGenerationError) -> str:
    return f"no userPrincipalName can be generated: {error}"


def _call_directly(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return method(*args, **kwargs)


def find_holder(
    customer_tenant_id: str,
    upn: str,
    *,
    directory: UpnDirectory | None,
    user_list: Callable[..., FoundUser | None],
    correlation_id: str,
    inactive: bool = False,
    call: Callable[..., Any] = _call_directly,
) -> FoundUser | None:
    """Who holds ``upn``: active users through the directory when it answers for the customer
    (one call, with the creation time that tells a hire's own user after a create sent without
    a look-up), else ``user_list`` (Partner Center's ``find_user_by_upn``, the customer's paged
    list); deleted users always from the user list (the directory lists active users only).

    The function and ``hire-preview`` both look through here, so they find the same holder.
    ``call`` wraps each call (the invocation counts them).
    """
    if (
        not inactive
        and directory is not None
        and directory.available(customer_tenant_id) is not False
    ):
        try:
            found: FoundUser | None = call(
                directory.find_user_by_upn, customer_tenant_id, upn, correlation_id=correlation_id
            )
            return found
        except DirectoryUnavailable:
            pass  # not consented (or this UPN only): the user list answers
    listed: FoundUser | None = call(
        user_list, customer_tenant_id, upn, correlation_id=correlation_id, inactive=inactive
    )
    return listed
