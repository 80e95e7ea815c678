"""The referral: received, routed, triaged, waiting, and the closed loop back to the referrer.

Plain Python, no I/O. Methods change state and record what happened as events; the store
publishes them in the same transaction as the state change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import (
    ClientWaitlisted,
    ConsentGranted,
    ConsentWithdrawn,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    ReferralStatusChanged,
    Urgency,
    WaitlistExited,
)
from ketenbus.contracts.values import (
    ConsentGiver,
    ConsentPurpose,
    DeclineReason,
    ReferralStatus,
    ReferralTopic,
    ReferrerType,
    WorkType,
    new_id,
)
from ketenbus.intake.regions import Region
from ketenbus.kit.errors import DomainError

OUTSIDE_REGION_REDIRECT = (
    "Buiten ons werkgebied: verwijs naar het sociaal wijkteam van de eigen gemeente."
)


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class ReferralState(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    WAITLISTED = "waitlisted"
    DECLINED = "declined"
    # The same person already has an open referral at the organisation: linked, not doubled.
    LINKED = "linked"
    CLOSED = "closed"
    # Left the waiting list without help (the client asked to be forgotten).
    WITHDRAWN = "withdrawn"


OPEN_STATES = frozenset({ReferralState.RECEIVED, ReferralState.ACCEPTED, ReferralState.WAITLISTED})
# The order of the closed loop: a later status is never followed by an earlier one.
_LOOP_ORDER = {
    ReferralStatus.RECEIVED: 0,
    ReferralStatus.WAITLISTED: 1,
    ReferralStatus.ACCEPTED: 2,
    ReferralStatus.DECLINED: 2,
    ReferralStatus.FIRST_CONTACT: 3,
    ReferralStatus.CLOSED: 4,
}


@dataclass
class Referrer:
    type: ReferrerType
    organisation_id: str
    reference: str | None


@dataclass
class Placement:
    """Where the referral landed: the serving organisation and who funds the help."""

    organisation_id: str
    municipality: str
    work_type: WorkType

    @classmethod
    def of(cls, region: Region) -> Placement:
        return cls(region.organisation_id, region.municipality, region.work_type)


@dataclass
class Referral:
    id: str
    client_ref: str
    referrer: Referrer
    topic: ReferralTopic
    urgency: Urgency
    postcode_area: str
    consent_id: str
    received_at: datetime
    state: ReferralState = ReferralState.RECEIVED
    placement: Placement | None = None
    duplicate_of: str | None = None
    # False once the client withdrew (or never gave) consent for feedback to the referrer.
    feedback_allowed: bool = True
    accepted_at: datetime | None = None
    first_contact_at: datetime | None = None
    closed_at: datetime | None = None
    # The closed loop as the referrer last heard it.
    loop_status: ReferralStatus = ReferralStatus.RECEIVED
    loop_reason: DeclineReason | None = None
    loop_redirect: str | None = None
    loop_changed_at: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    @property
    def crisis(self) -> bool:
        return self.urgency.crisis

    @property
    def organisation_id(self) -> str | None:
        return self.placement.organisation_id if self.placement else None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @classmethod
    def receive(
        cls,
        *,
        client_ref: str,
        referrer: Referrer,
        topic: ReferralTopic,
        urgency: Urgency,
        postcode_area: str,
        consent_id: str,
        feedback_allowed: bool,
        region: Region | None,
        duplicate_of: str | None = None,
        at: datetime,
        referral_id: str | None = None,
    ) -> Referral:
        referral = cls(
            id=referral_id or new_id("ref"),
            client_ref=client_ref,
            referrer=referrer,
            topic=topic,
            urgency=urgency,
            postcode_area=postcode_area,
            consent_id=consent_id,
            received_at=at,
            feedback_allowed=feedback_allowed,
        )
        if region is None:
            referral._decline(DeclineReason.OUTSIDE_REGION, OUTSIDE_REGION_REDIRECT, at)
            return referral
        referral.placement = Placement.of(region)
        referral.duplicate_of = duplicate_of
        referral._record(
            ReferralReceived(
                referral_id=referral.id,
                client_ref=client_ref,
                organisation_id=region.organisation_id,
                municipality=region.municipality,
                postcode_area=postcode_area,
                referrer_type=referrer.type,
                referrer_organisation_id=referrer.organisation_id,
                topic=topic,
                urgency=urgency,
                consent_id=consent_id,
                duplicate_of=duplicate_of,
                received_at=at,
            )
        )
        referral._tell_referrer(ReferralStatus.RECEIVED, at)
        return referral

    def accept(self, at: datetime) -> None:
        placement = self._placed(ReferralState.RECEIVED, "accepted")
        self.state, self.accepted_at = ReferralState.ACCEPTED, at
        self._record(
            ReferralAccepted(
                referral_id=self.id,
                client_ref=self.client_ref,
                organisation_id=placement.organisation_id,
                funder=placement.municipality,
                work_type=placement.work_type,
                referrer_type=self.referrer.type,
                topic=self.topic,
                postcode_area=self.postcode_area,
                crisis=self.crisis,
                consent_id=self.consent_id,
                received_at=self.received_at,
                accepted_at=at,
            )
        )
        self._tell_referrer(ReferralStatus.ACCEPTED, at)

    def waitlist(self, position: int, at: datetime) -> None:
        placement = self._placed(ReferralState.RECEIVED, "waitlisted")
        self.state = ReferralState.WAITLISTED
        self._record(
            ClientWaitlisted(
                referral_id=self.id,
                client_ref=self.client_ref,
                organisation_id=placement.organisation_id,
                position=position,
                waitlisted_at=at,
            )
        )
        self._tell_referrer(ReferralStatus.WAITLISTED, at)

    def admit(self, at: datetime) -> None:
        """A place came free: off the waiting list and into a trajectory."""
        placement = self._placed(ReferralState.WAITLISTED, "let in from the waiting list")
        self.state, self.accepted_at = ReferralState.ACCEPTED, at
        self._record(
            WaitlistExited(
                referral_id=self.id,
                client_ref=self.client_ref,
                organisation_id=placement.organisation_id,
                funder=placement.municipality,
                work_type=placement.work_type,
                referrer_type=self.referrer.type,
                topic=self.topic,
                postcode_area=self.postcode_area,
                consent_id=self.consent_id,
                received_at=self.received_at,
                exited_at=at,
                crisis=self.crisis,
            )
        )
        self._tell_referrer(ReferralStatus.ACCEPTED, at)

    def link_to(self, original: Referral, at: datetime) -> None:
        """The person already has an open referral here: this one follows that one."""
        self._placed(ReferralState.RECEIVED, "linked")
        self.state, self.duplicate_of = ReferralState.LINKED, original.id
        if original.state is ReferralState.ACCEPTED:
            self._tell_referrer(ReferralStatus.ACCEPTED, at)
            if original.first_contact_at is not None:
                self.first_contact(at)
        elif original.state is ReferralState.WAITLISTED:
            self._tell_referrer(ReferralStatus.WAITLISTED, at)

    def first_contact(self, at: datetime) -> None:
        if self.state is ReferralState.CLOSED:
            return  # closed already says more than first contact
        if self.state not in (ReferralState.ACCEPTED, ReferralState.LINKED):
            raise DomainError(f"referral {self.id} is {self.state}: no contact can follow")
        self.first_contact_at = self.first_contact_at or at
        self._tell_referrer(ReferralStatus.FIRST_CONTACT, at)

    def close(self, at: datetime) -> bool:
        """The trajectory closed. True if that changed anything (a repeat changes nothing)."""
        if self.state is ReferralState.CLOSED:
            return False
        if self.state not in (ReferralState.ACCEPTED, ReferralState.LINKED):
            raise DomainError(f"referral {self.id} is {self.state}: it has no trajectory to close")
        self.state, self.closed_at = ReferralState.CLOSED, at
        self._tell_referrer(ReferralStatus.CLOSED, at)
        return True

    def withdraw_from_waitlist(self, at: datetime) -> None:
        """The client asked to be forgotten while waiting: the wait ends, declined for want of
        consent, so that no place is ever offered to someone the chain no longer knows."""
        if self.state is not ReferralState.WAITLISTED:
            return
        self._decline(DeclineReason.NO_CONSENT, None, at)
        self.state = ReferralState.WITHDRAWN

    def stop_feedback(self) -> None:
        """Consent for feedback withdrawn: the referrer hears nothing more."""
        self.feedback_allowed = False

    def _placed(self, required: ReferralState, becoming: str) -> Placement:
        if self.state is not required or self.placement is None:
            raise DomainError(f"referral {self.id} is {self.state}, it cannot be {becoming}")
        return self.placement

    def _decline(self, reason: DeclineReason, redirect: str | None, at: datetime) -> None:
        self.state = ReferralState.DECLINED
        self._record(
            ReferralDeclined(
                referral_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id or self.referrer.organisation_id,
                reason=reason,
                redirect=redirect,
                declined_at=at,
            )
        )
        self._tell_referrer(ReferralStatus.DECLINED, at, reason=reason, redirect=redirect)

    def _tell_referrer(
        self,
        status: ReferralStatus,
        at: datetime,
        reason: DeclineReason | None = None,
        redirect: str | None = None,
    ) -> None:
        """The closed loop: where the referral stands, and nothing about the person."""
        if not self.feedback_allowed:
            return
        if self.loop_changed_at is not None and (
            status is self.loop_status or _LOOP_ORDER[status] < _LOOP_ORDER[self.loop_status]
        ):
            return  # heard again, or out of date: the referrer already knows better
        self.loop_status, self.loop_reason, self.loop_redirect = status, reason, redirect
        self.loop_changed_at = at
        self._record(
            ReferralStatusChanged(
                referral_id=self.id,
                referrer_organisation_id=self.referrer.organisation_id,
                referrer_reference=self.referrer.reference,
                status=status,
                reason=reason,
                redirect=redirect,
                changed_at=at,
            )
        )

    def _record(self, event: Event) -> None:
        self.events.append(event)


def waitlist_position(crisis: bool, waiting_crises: int, waiting: int) -> int:
    """Crisis first: a crisis goes behind the other crises, anyone else at the end."""
    return (waiting_crises if crisis else waiting) + 1


@dataclass
class Organisation:
    """A welfare organisation's caseload: how many trajectories run, how many it can run."""

    id: str
    capacity: int | None
    occupied: int = 0
    version: int = 0

    @property
    def has_room(self) -> bool:
        return self.capacity is None or self.occupied < self.capacity

    def take_place(self) -> None:
        if not self.has_room:
            raise DomainError(f"{self.id} has no place free")
        self.occupied += 1

    def free_place(self) -> None:
        self.occupied = max(self.occupied - 1, 0)


def triage(referral: Referral, organisation: Organisation, position: int, at: datetime) -> None:
    """Capacity decides: a free place means accepted, a full caseload means the waiting list."""
    if organisation.has_room:
        organisation.take_place()
        referral.accept(at)
    else:
        referral.waitlist(position, at)


@dataclass
class Consent:
    """One permission: this partner may receive this, for this purpose, until withdrawn."""

    id: str
    client_ref: str
    organisation_id: str
    partner_organisation_id: str
    purpose: ConsentPurpose
    given_by: ConsentGiver
    granted_at: datetime
    referral_id: str | None = None
    withdrawn_at: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None

    @classmethod
    def grant(
        cls,
        *,
        client_ref: str,
        organisation_id: str,
        partner_organisation_id: str,
        purpose: ConsentPurpose,
        given_by: ConsentGiver,
        granted_at: datetime,
        referral_id: str | None = None,
        consent_id: str | None = None,
    ) -> Consent:
        consent = cls(
            id=consent_id or new_id("cns"),
            client_ref=client_ref,
            organisation_id=organisation_id,
            partner_organisation_id=partner_organisation_id,
            purpose=purpose,
            given_by=given_by,
            granted_at=granted_at,
            referral_id=referral_id,
        )
        consent.events.append(
            ConsentGranted(
                consent_id=consent.id,
                client_ref=client_ref,
                organisation_id=organisation_id,
                given_by=given_by,
                partner_organisation_id=partner_organisation_id,
                purpose=purpose,
                granted_at=granted_at,
            )
        )
        return consent

    def withdraw(self, at: datetime) -> None:
        if not self.active:
            raise DomainError(f"consent {self.id} was already withdrawn")
        self.withdrawn_at = at
        self.events.append(
            ConsentWithdrawn(
                consent_id=self.id,
                client_ref=self.client_ref,
                organisation_id=self.organisation_id,
                partner_organisation_id=self.partner_organisation_id,
                purpose=self.purpose,
                withdrawn_at=at,
            )
        )


def consent_partner(
    purpose: ConsentPurpose, referrer_organisation_id: str, region: Region
) -> str | None:
    """Who a purpose named at referral shares with: the referrer hears back, debt counselling
    goes to the region's partner, reminders come from the organisation itself."""
    if purpose is ConsentPurpose.REFERRAL_FEEDBACK:
        return referrer_organisation_id
    if purpose is ConsentPurpose.DEBT_COUNSELLING:
        return region.debt_counselling_partner
    return region.organisation_id
