"""The hire workflow: one hire, one delivery's work on it, from its record to its user.

``HireWorkflow`` is made per delivery and holds what every step needs (the event, the
invocation, the ports), so no step passes them on. It decides from the record with the state
table (``shared.domain.planning.step_for``) and changes the record only through its named
transitions (``shared.domain.model.HireRecord``). The delivery handling around it (claims,
redelivery, the last delivery, outcomes) is ``shared.service.provisioning.Provisioner``.

Who may be this hire's user (docs/design.md, "The identity rule"):

- with ``immutableId`` in the event, only a user with exactly that ``immutableId``;
- without it, a user found holding the UPN only when the ledger proves this hire's create could
  have made it: an unsettled send of that UPN, made after the UPN was found free. Anyone else
  is a ``conflict``.

No SDK and no adapter in sight: the workflow works through the ports in ``shared.domain.ports``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from shared.domain.errors import (
    AnswerLost,
    LedgerConflict,
    ProvisioningError,
    Refused,
    ServiceUnavailableError,
    UpnTaken,
)
from shared.domain.events import HireEvent
from shared.domain.model import (
    PASSWORD_STATES,
    FoundUser,
    HireRecord,
    HireState,
    NewUser,
    SecretRef,
    Send,
    SendKind,
)
from shared.domain.outcomes import Category, Outcome, Status, utc_now_text
from shared.domain.passwords import fingerprint
from shared.domain.planning import (
    Step,
    UpnChoice,
    UpnVerdict,
    choose_upn,
    exhausted_message,
    find_holder,
    generation_failure_message,
    identity_changes,
    step_for,
)
from shared.domain.ports import HireLedger, PartnerCenter, PasswordVault, UpnDirectory
from shared.domain.upn import UpnGenerationError
from shared.service.invocation import Invocation

# A password about to expire is not handed to a new create: the person needs time to use it.
PASSWORD_FRESHNESS = timedelta(hours=1)
_STATE_OF = {
    Status.CREATED: HireState.CREATED,
    Status.RESTORED: HireState.RESTORED,
    Status.ALREADY_EXISTS: HireState.EXISTING,
}


class DecideAgain(Exception):
    """The record was moved on (a generated UPN turned out to be someone else's): decide anew."""


class WaitForEarlierSend(Exception):
    """An edited event met a send of the hire that is not settled yet: redeliver it later
    (no retries within the invocation, which would hold the claim the earlier send needs)."""


@dataclass(frozen=True, kw_only=True)
class HireServices:
    """What every hire's workflow works with; wired once by the composition root."""

    partner_center: PartnerCenter
    passwords: PasswordVault
    ledger: HireLedger
    now: Callable[[], datetime]
    new_password: Callable[[], str]
    password_ttl: timedelta
    claim_ttl: timedelta
    upn_template: str
    # One-call UPN look-ups (Microsoft Graph) where the customer allows them; None: Partner
    # Center's user list only (the up-front check of today).
    directory: UpnDirectory | None = None


class HireWorkflow:
    """One delivery's work on one hire (made per delivery; holds no state between them)."""

    def __init__(self, services: HireServices, event: HireEvent, invocation: Invocation) -> None:
        self.event = event
        self.invocation = invocation
        self._partner_center = services.partner_center
        self._passwords = services.passwords
        self._ledger = services.ledger
        self._now = services.now
        self._new_password = services.new_password
        self._password_ttl = services.password_ttl
        self._claim_ttl = services.claim_ttl
        self._upn_template = services.upn_template
        self._directory = services.directory

    def run(self, record: HireRecord) -> Outcome:
        """The step the record's state calls for (``STEP_OF_STATE``), on a claimed record."""
        record = self._check_identity(record)
        step = step_for(record)
        if step is Step.RESEND_CREATE:
            return self._resume_create(record)
        if step is Step.FINISH_RESTORE:
            return self._resume_restore(record)
        if step is Step.ANSWER:  # a success read after the claim: not expected, but total
            return self.answer_from_record(record)
        return self._first_create(record)

    def write(self, record: HireRecord) -> HireRecord:
        """Write a record a transition returned, renewing this invocation's claim."""
        return self.store(self._renewed(record))

    def _renewed(self, record: HireRecord) -> HireRecord:
        now = self._now()
        return record.claimed(self.invocation.owner, now + self._claim_ttl, now, count=False)

    def _write_create_call(self, record: HireRecord) -> HireRecord:
        """Write a ``create_sent`` record: the call is counted before it goes out."""
        renewed = self._renewed(record)
        self._note_unsent_create(renewed)
        return self.store(renewed)

    def _note_unsent_create(self, record: HireRecord) -> None:
        send = record.current_send
        assert send is not None and record.updated_at is not None
        self.invocation.unsent_create = (record.generation, send.calls, record.updated_at)

    def _reads_own_unsent_create(self, record: HireRecord) -> bool:
        """``record`` is this invocation's own write of a create call that never went out (the
        write applied, its answer was lost): nothing but that write can carry this owner, call
        count and write time, and a claim taken over and back would have rewritten them."""
        unsent = self.invocation.unsent_create
        send = record.current_send
        return (
            unsent is not None
            and send is not None
            and record.claim_owner == self.invocation.owner
            and (record.generation, send.calls) == unsent[:2]
            and record.updated_at is not None
            # The ledger keeps times to the microsecond or so; another write is seconds apart.
            and abs(record.updated_at - unsent[2]) < timedelta(milliseconds=1)
        )

    def store(self, record: HireRecord) -> HireRecord:
        """The one conditional update of the hire's record (``LedgerConflict``: decide again)."""
        updated = self._ledger.update(record)
        self.invocation.counted = True
        self.invocation.state = updated.state
        return updated

    # ------------------------------------------------------------------ the identity

    def _check_identity(self, record: HireRecord) -> HireRecord:
        """CONTRACT section 5: a hire's identity may change only while nothing of it may have
        been applied. Before that, the record follows the event (a corrected customer); after,
        an event with another customer, UPN or immutableId is refused naming the recorded
        values, and the record keeps every send until it is settled."""
        record = record.identity_adopted(self.event.user.immutable_id)  # rows from before
        if not record.identity_fixed:
            if record.customer_tenant_id != self.event.customer_tenant_id:
                record = self.write(record.followed(self.event.customer_tenant_id))
            return record
        changed = identity_changes(self.event, record, self._upn_template)
        if not changed:
            return record
        pending = record.pending_restore or record.pending_creates[-1]
        what = "restore" if pending.kind is SendKind.RESTORE else "create"
        immutable = pending.immutable_id or "none"
        if not self.invocation.last:
            # The earlier send may still be settled by its own message (a redelivery after a
            # lost answer or a throttled call): wait for it rather than end this event with a
            # refusal that the hire's success would contradict. Once it succeeded, the record
            # answers this event (already_exists); still unsettled on the last delivery, the
            # change is refused.
            raise WaitForEarlierSend(
                f"this hire's {', '.join(changed)} changed while a {what} of it may have been "
                "applied and is not settled yet: this event waits for it"
            )
        refusal = Refused(
            Category.CONFLICT,
            f"this hire's {', '.join(changed)} changed after a {what} of it may have been "
            f"applied (recorded: customer {record.customer_tenant_id}, userPrincipalName "
            f"{pending.user_principal_name}, immutableId {immutable}): publish the event with "
            "the recorded values to finish this hire; a different person needs a new eventId",
        )
        self.write(record.edit_refused(refusal.failure.as_error()))
        raise refusal

    # ------------------------------------------------------------------ creates

    def _first_create(self, record: HireRecord) -> Outcome:
        """No create of this hire may have been applied: choose and check the UPN, then create
        (or restore the deleted user of a rehire)."""
        direct = self._direct_choice()
        choice = direct or self._choose_upn(record)
        upn = choice.upn
        if choice.verdict in (UpnVerdict.THIS_HIRES, UpnVerdict.HELD):
            assert choice.holder is not None
            return self._settle_found(record, choice.holder, upn=upn)
        if choice.verdict is UpnVerdict.HELD_DELETED:
            assert choice.holder is not None
            raise self._refuse(record, _deleted_conflict(self.event, choice))
        if choice.verdict is UpnVerdict.REHIRE:
            assert choice.holder is not None
            return self._start_restore(record, choice)
        password, record = self._fresh_password(record)
        # Without an immutableId, or for a generated UPN, the UPN was looked up just now;
        # with an immutableId and a given UPN the look-up is skipped, and not recorded as done.
        checked = direct is None and (choice.generated or self.event.user.immutable_id is None)
        record = self._write_create_call(
            record.create_sent(
                upn,
                immutable_id=self.event.user.immutable_id,
                upn_checked=checked,
                sent_at=self._now(),
            ),
        )
        return self._send_create(record, password)

    def creates_directly(self) -> bool:
        """The event's UPN is created without any look-up up front (``_direct_choice``)."""
        return self._direct_choice() is not None

    def create_with_opening(self, opened: HireRecord) -> Outcome | None:
        """A hire's likely first delivery, one table write before the create: the password
        goes to the vault first (its secret's name is the eventId's, so it needs no record),
        then ONE conditional insert of ``opened`` already in ``creating`` with the send
        (UPN, immutableId, the secret's exact version, when it is sent), then the create.

        None when the insert meets a record: the caller reads it and goes on as any delivery
        does (the version written here is named by no record and expires unused). A
        transient failure of the insert may still have applied it: it propagates, the retry
        reads the record, and a record claimed by this invocation is taken up as its own.
        Only for ``creates_directly()`` (a given UPN, nothing to look up first)."""
        upn = self.event.user.user_principal_name
        assert upn is not None and self.creates_directly()
        password = self._new_password()
        secret = self._passwords.store(
            self.event.event_id, password, expires_on=self._now() + self._password_ttl
        )
        record = opened.password_recorded(secret).create_sent(
            upn,
            immutable_id=self.event.user.immutable_id,
            upn_checked=False,  # nothing was looked up
            sent_at=self._now(),
        )
        self.invocation.insert_tried = True
        self._note_unsent_create(record)
        try:
            record = self._ledger.add(record)
        except LedgerConflict:
            return None
        self.invocation.counted = True
        self.invocation.state = record.state
        return self._send_create(record, password)

    def _direct_choice(self) -> UpnChoice | None:
        """With a directory that tells who holds a UPN in one call (issue 17), a given UPN is
        created without any look-up up front when the identity rule can settle a "taken" or a
        lost answer afterwards: by the event's immutableId, or (without one) by the holder's
        creation time against this hire's first create, when the directory is known to answer
        for this customer. Otherwise None: the up-front look-ups decide (and the first
        directory look-up tells whether it answers for the customer)."""
        upn = self.event.user.user_principal_name
        if self._directory is None or upn is None:
            return None
        customer = self.event.customer_tenant_id
        if self.event.user.immutable_id is None and self._directory.available(customer) is not True:
            return None
        return UpnChoice(upn=upn, verdict=UpnVerdict.FREE)

    def _resume_create(self, record: HireRecord) -> Outcome:
        """A create of this hire may have been applied: send it again, with the same UPN and
        password (the same MS-RequestId until a definite answer, a new one after it). Partner
        Center answers with the user (it remembers the MS-RequestId), creates it (nothing was
        applied), or says the UPN is taken; the look-up that follows finds this hire's user by
        the identity rule, which asks every unsettled send."""
        # This invocation's own record of a call it never sent (the write's answer was lost):
        # send under it, so a refusal cannot count a call that never went out as applied.
        unsent = self._reads_own_unsent_create(record)
        pending = record.current_send or (
            record.pending_creates[-1] if record.pending_creates else None
        )
        if pending is None or not pending.password_secret_id:
            # Written before every create; repaired if lost (no user can hold it then).
            password, record = self._fresh_password(record)
            upn, immutable_id, checked = (
                _upn_of(self.event, record),
                self.event.user.immutable_id,
                False,
            )
        else:
            password = self._passwords.read(pending.password_secret_id)
            record = record.password_recorded(
                SecretRef(id=pending.password_secret_id, expires_on=pending.password_expires_on)
            )
            upn, immutable_id, checked = (
                pending.user_principal_name,
                pending.immutable_id,
                pending.upn_checked,
            )
        # A new generation's send dates from the hire's first call of any earlier one.
        first_sent_at = min(
            (send.first_sent_at for send in record.pending_creates if send.first_sent_at),
            default=None,
        )
        if not unsent:
            record = self._write_create_call(
                record.create_sent(
                    upn,
                    immutable_id=immutable_id,
                    upn_checked=checked,
                    first_sent_at=first_sent_at,
                    sent_at=self._now(),
                )
            )
        return self._send_create(record, password)

    def _send_create(self, record: HireRecord, password: str) -> Outcome:
        upn = _upn_of(self.event, record)
        self.invocation.request_id = self.event.request_id_for(record.generation)
        self.invocation.unsent_create = None  # the call goes out now
        try:
            user = self.invocation.call(
                self._partner_center.create_user,
                self.event.customer_tenant_id,
                _new_user(self.event, upn, password),
                request_id=self.invocation.request_id,
                correlation_id=self.event.correlation_guid,
            )
        except AnswerLost:
            raise  # the record says CREATING: the next step sends it again
        except UpnTaken as taken:
            found = self._find(upn)
            if found is not None:
                # This call was refused, so only the calls before it could have made the user.
                return self._settle_found(record, found, upn=upn, refused_call=True, said=taken)
            deleted = self._find(upn, inactive=True)
            if deleted is not None:
                choice = UpnChoice(
                    upn=upn,
                    verdict=UpnVerdict.REHIRE
                    if _same_person(self.event, deleted)
                    else UpnVerdict.HELD_DELETED,
                    holder=deleted,
                    generated=self.event.user.user_principal_name is None,
                )
                if choice.verdict is UpnVerdict.REHIRE:
                    # Refused, so nothing was created: this generation is over; restore.
                    record = self.write(record.call_refused())
                    return self._start_restore(record, choice)
                if choice.verdict is UpnVerdict.HELD_DELETED:
                    record = record.not_made_by(upn)  # a deleted someone else holds it
                    if choice.generated:
                        self._move_to_next_upn(record, upn)
                raise self._refuse(
                    record, _deleted_conflict(self.event, choice, said=taken)
                ) from None
            if _only_call_of(record, upn):
                # This refused call was the only create of this UPN that may have been
                # applied, so someone else holds it. Forget the send now: resent later, a
                # second refusal would leave this one counted as "may have made the holder",
                # and the holder (another hire's user, once listed) would be taken for ours.
                self.write(record.upn_released(upn))
            raise ServiceUnavailableError(
                f"Partner Center says userPrincipalName {upn} is taken but does not list the "
                "user yet",
                http_status=taken.failure.http_status,
                code=taken.failure.code,
            ) from None
        except Refused as refusal:
            if (
                record.pending_creates_before or record.create_calls > 1
            ) and refusal.failure.category is not Category.PERMISSION:
                # An earlier send may have made the user, and a duplicate is not always
                # answered in words we recognise: look before calling it refused.
                found = self._find(upn)
                if found is not None:
                    return self._settle_found(
                        record,
                        found,
                        upn=upn,
                        refused_call=True,
                        said=refusal,
                    )
            raise self._refuse(record, refusal) from None
        if user.password_fingerprint and user.password_fingerprint != fingerprint(password):
            # Partner Center answered with an earlier create of this MS-RequestId, made with a
            # password this hire does not hold: never report a secret the user does not have.
            raise self._refuse(
                record,
                Refused(
                    Category.CONFLICT,
                    f"Partner Center returned user {user.id} for this hire's request id with an "
                    "initial password the ledger does not hold: reset that user's password by "
                    "hand, or delete the user and replay",
                ),
            ) from None
        send = record.current_send
        return self._succeed(record, Status.CREATED, user, secret=send or record.current_secret)

    def _settle_found(
        self,
        record: HireRecord,
        found: FoundUser,
        *,
        upn: str,
        refused_call: bool = False,
        said: ProvisioningError | None = None,
    ) -> Outcome:
        """A user holds the hire's UPN: this hire's own, the same person from before, or not.

        The identity rule (README): this hire made it when an unsettled send of this hire may
        have made it (``Send.may_have_made``); else the same immutableId is the same person
        from before; else it is someone else, and no send of this UPN ever applied.
        """
        wanted = self.event.user.immutable_id
        if found.immutable_id is None:
            # A user list may leave immutableId out: ask for the whole user before deciding
            # (with the event's immutableId it says who; without, a holder with one is not
            # this hire's). The directory's creation time is kept: Partner Center has none.
            whole = self.invocation.call(
                self._partner_center.get_user,
                self.event.customer_tenant_id,
                found.id,
                correlation_id=self.event.correlation_guid,
            )
            if whole is not None:
                found = whole if whole.created_at else replace(whole, created_at=found.created_at)
        maker = record.maker_of(found, refused_call=refused_call)
        if maker is not None:
            return self._succeed(record, Status.CREATED, found, secret=maker)
        if wanted is not None and found.immutable_id == wanted:
            return self._succeed(record, Status.ALREADY_EXISTS, found)
        if record.made_by_none_of(found):
            record = record.not_made_by(upn)
            if self.event.user.user_principal_name is None:
                # A generated UPN someone else took: the next candidate, a new MS-RequestId.
                self._move_to_next_upn(record, upn)
        raise self._refuse(
            record,
            Refused(
                Category.CONFLICT,
                f"userPrincipalName {upn} already belongs to another user (id {found.id}) in "
                f"customer {self.event.customer_tenant_id}: correct the HR record (another UPN, or "
                "the right immutableId) and republish",
                http_status=said.failure.http_status if said else None,
                code=said.failure.code if said else None,
            ),
        )

    # ------------------------------------------------------------------ generated UPNs

    def _choose_upn(self, record: HireRecord) -> UpnChoice:
        generated = self.event.user.user_principal_name is None
        try:
            choice = choose_upn(
                self.event,
                self._upn_template,
                lambda upn, inactive: self._find(upn, inactive=inactive),
                recorded=record.user_principal_name if generated else None,
                # With an immutableId, identity is settled by it, so the duplicate answer of
                # the create can reveal a holder: no list of every active user up front.
                # Without one, only a check before the first create proves a user found later
                # is this hire's (the identity rule).
                check_given_upn=self.event.user.immutable_id is None,
            )
        except UpnGenerationError as error:
            raise self._refuse(
                record,
                Refused(Category.INVALID_EVENT, generation_failure_message(error)),
            ) from None
        except Refused as refusal:  # no such customer, no GDAP role: as definite as a create's
            raise self._refuse(record, refusal) from None
        if choice.verdict is UpnVerdict.EXHAUSTED:
            raise self._refuse(
                record,
                Refused(Category.CONFLICT, exhausted_message(self.event, choice)),
            )
        return choice

    def _move_to_next_upn(self, record: HireRecord, upn: str) -> NoReturn:
        """Let go of a generated UPN someone else holds; the next step chooses another."""
        self.write(record.upn_released(upn))
        raise DecideAgain()

    # ------------------------------------------------------------------ rehires

    def _start_restore(self, record: HireRecord, choice: UpnChoice) -> Outcome:
        """A deleted user with this immutableId holds the UPN: bring it back.

        The new password is stored and the record says RESTORING before the restore and reset
        are sent, so a lost answer (or a refused reset) is finished by the next delivery.
        """
        assert choice.holder is not None
        password, record = self._fresh_password(record)
        record = self.write(
            record.restore_sent(
                choice.holder.id, choice.upn, immutable_id=self.event.user.immutable_id
            ),
        )
        return self._finish_restore(record, password, known_inactive=True)

    def _resume_restore(self, record: HireRecord) -> Outcome:
        """A restore (and reset) of this rehire may have been applied, or not finished: send
        what is missing, with the recorded password."""
        pending = record.pending_restore
        if pending is None or not pending.password_secret_id or not pending.user_id:
            # Written together before the restore; repaired if lost.
            self.write(record.restore_settled())
            raise DecideAgain()
        password = self._passwords.read(pending.password_secret_id)
        record = record.password_recorded(
            SecretRef(id=pending.password_secret_id, expires_on=pending.password_expires_on)
        )
        record = self.write(
            record.restore_sent(
                pending.user_id, pending.user_principal_name, immutable_id=pending.immutable_id
            ),
        )
        return self._finish_restore(record, password, known_inactive=False)

    def _finish_restore(
        self,
        record: HireRecord,
        password: str,
        *,
        known_inactive: bool,
    ) -> Outcome:
        restore = record.pending_restore
        assert restore is not None and restore.user_id is not None
        user_id = restore.user_id
        customer = self.event.customer_tenant_id
        correlation = self.event.correlation_guid
        user: FoundUser | None = None
        if not known_inactive:
            user = self.invocation.call(
                self._partner_center.get_user,
                customer,
                user_id,
                correlation_id=correlation,
            )
            if user is None:
                raise self._refuse(
                    record.restore_settled(),
                    Refused(
                        Category.CONFLICT,
                        f"the deleted user {user_id} this rehire restores is gone from customer "
                        f"{customer} (purged, or deleted permanently): replay the event to "
                        "create the user anew",
                    ),
                )
        if user is None or not user.active:
            try:
                user = self.invocation.call(
                    self._partner_center.restore_user,
                    customer,
                    user_id,
                    correlation_id=correlation,
                )
            except UpnTaken as taken:
                raise self._refuse(
                    record.restore_settled(),
                    Refused(
                        Category.CONFLICT,
                        f"the deleted user {user_id} cannot be restored: another active user "
                        f"holds userPrincipalName {restore.user_principal_name} in customer "
                        f"{customer}; correct the HR record and republish",
                        http_status=taken.failure.http_status,
                        code=taken.failure.code,
                    ),
                ) from None
            except Refused as refusal:
                raise self._refuse(record, refusal) from None
        try:
            # Resetting with the same password again is harmless: a repeat changes nothing.
            self.invocation.call(
                self._partner_center.reset_password,
                customer,
                user_id,
                password,
                correlation_id=correlation,
            )
        except Refused as refusal:
            raise self._refuse(record, refusal) from None
        return self._succeed(record, Status.RESTORED, user, secret=restore)

    def _fresh_password(self, record: HireRecord) -> tuple[str, HireRecord]:
        """The hire's password for a create or restore no earlier one can have used.

        Kept when recorded and fresh (so every outcome names the same secret); replaced when
        missing, expired or about to expire, since no user can hold it yet.
        """
        expires = record.password_expires_on
        if (
            record.password_secret_id
            and expires is not None
            and expires > self._now() + PASSWORD_FRESHNESS
        ):
            return self._passwords.read(record.password_secret_id), record
        password = self._new_password()
        stored = self._passwords.store(
            self.event.event_id, password, expires_on=self._now() + self._password_ttl
        )
        return password, record.password_recorded(stored)

    def _succeed(
        self,
        record: HireRecord,
        status: Status,
        user: FoundUser,
        *,
        secret: Send | SecretRef | None = None,
    ) -> Outcome:
        """The hire's user is known: ``secret`` is the send (or secret) whose password it holds
        when this hire made or restored it."""
        created = status in (Status.CREATED, Status.RESTORED)
        secret_id: str | None = None
        expires: datetime | None = None
        if created and isinstance(secret, Send):
            secret_id, expires = secret.password_secret_id, secret.password_expires_on
        elif created and isinstance(secret, SecretRef):
            secret_id, expires = secret.id, secret.expires_on
        outcome = Outcome(
            event_id=self.event.event_id,
            status=status,
            customer_tenant_id=self.event.customer_tenant_id,
            user_principal_name=user.user_principal_name or record.user_principal_name,
            correlation_id=self.event.correlation_id,
            attempts=self.invocation.delivery_number,
            user_id=user.id,
            initial_password_secret_id=secret_id,
            completed_at=self._now_text(),
        )
        # Stored as is: the success releases the claim (no renewal).
        self.store(
            record.succeeded(
                _STATE_OF[status],
                user_id=user.id,
                user_principal_name=outcome.user_principal_name or "",
                password_secret_id=secret_id,
                password_expires_on=expires,
                outcome=outcome.as_message(),
                now=self._now(),
            ),
        )
        return outcome

    def answer_from_record(self, record: HireRecord) -> Outcome:
        """The hire succeeded before: say so, with the same user and password, and nothing else.

        The record wins over the event: an eventId that made a user never makes another, even
        when HR republishes it with changes.
        """
        return Outcome(
            event_id=self.event.event_id,
            status=Status.ALREADY_EXISTS,
            customer_tenant_id=record.customer_tenant_id,
            user_principal_name=record.user_principal_name,
            correlation_id=self.event.correlation_id,
            attempts=self.invocation.delivery_number,
            user_id=record.user_id,
            initial_password_secret_id=(
                record.password_secret_id if record.state in PASSWORD_STATES else None
            ),
            completed_at=self._now_text(),
        )

    def _refuse(
        self,
        record: HireRecord,
        refusal: ProvisioningError,
    ) -> ProvisioningError:
        """A definite answer: the record learns it (``HireRecord.refused`` keeps every send
        that may have been applied), and the next try is a new request.

        Only ever for a definite refusal; a transient answer never marks a hire refused.
        """
        self.write(record.refused(refusal.failure.as_error()))
        return refusal

    def _find(self, upn: str, *, inactive: bool = False) -> FoundUser | None:
        return find_holder(
            self.event.customer_tenant_id,
            upn,
            directory=self._directory,
            user_list=self._partner_center.find_user_by_upn,
            correlation_id=self.event.correlation_guid,
            inactive=inactive,
            call=self.invocation.call,
        )

    def _now_text(self) -> str:
        return utc_now_text(self._now())


def _only_call_of(record: HireRecord, upn: str) -> bool:
    """The current send's latest call, just refused, is its only one, and no other unsettled
    create of this hire names ``upn``: nothing of this UPN may have been applied."""
    current = record.current_send
    if current is None or current.kind is not SendKind.CREATE or current.calls > 1:
        return False
    folded = upn.casefold()
    return not any(
        send.user_principal_name.casefold() == folded
        for send in record.pending_creates
        if send is not current
    )


def _upn_of(event: HireEvent, record: HireRecord) -> str:
    """The UPN this hire uses: the recorded one, else the event's (checked before use)."""
    upn = record.user_principal_name or event.user.user_principal_name
    if upn is None:  # a generated UPN is recorded before anything uses it
        raise ServiceUnavailableError("the hire's generated userPrincipalName is not recorded")
    return upn


def _same_person(event: HireEvent, user: FoundUser) -> bool:
    return event.user.immutable_id is not None and user.immutable_id == event.user.immutable_id


def _deleted_conflict(
    event: HireEvent, choice: UpnChoice, *, said: ProvisioningError | None = None
) -> Refused:
    holder = choice.holder
    assert holder is not None
    return Refused(
        Category.CONFLICT,
        f"userPrincipalName {choice.upn} belongs to a deleted user (id {holder.id}) in "
        f"customer {event.customer_tenant_id} who is someone else (another immutableId): "
        "delete that user permanently or give this hire another UPN, then replay from the "
        "poison queue",
        http_status=said.failure.http_status if said else None,
        code=said.failure.code if said else None,
    )


def _new_user(event: HireEvent, upn: str, password: str) -> NewUser:
    user = event.user
    return NewUser(
        user_principal_name=upn,
        first_name=user.first_name,
        last_name=user.last_name,
        display_name=user.display_name,
        usage_location=user.usage_location,
        immutable_id=user.immutable_id,
        password=password,
    )
