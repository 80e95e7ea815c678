"""The referral: received, routed, triaged, and the closed loop back to the referrer.

Plain Python, no I/O. Methods change state and record what happened as events; the store
publishes them in the same transaction as the state change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events import (
    ConsentGranted,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    ReferralStatusChanged,
    Urgency,
)
from ketenbus.contracts.values import (
    ConsentGiver,
    ConsentPurpose,
    DeclineReason,
    ReferralStatus,
    ReferralTopic,
    ReferrerType,
    new_id,
)
from ketenbus.intake.regions import Region
from ketenbus.kit.failures import DomainError


class ReferralState(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WAITLISTED = "waitlisted"


@dataclass
class Referrer:
    type: ReferrerType
    organisation_id: str
    reference: str | None


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
    organisation_id: str | None = None
    municipality: str | None = None
    # The closed loop as the referrer last heard it.
    loop_status: ReferralStatus = ReferralStatus.RECEIVED
    loop_reason: DeclineReason | None = None
    loop_redirect: str | None = None
    loop_changed_at: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    @classmethod
    def receive(
        cls,
        *,
        client_ref: str,
        referrer: Referrer,
        topic: ReferralTopic,
        urgency: Urgency,
        postcode_area: str,
        consent_given_by: ConsentGiver,
        region: Region | None,
        at: datetime,
    ) -> Referral:
        referral = cls(
            id=new_id("ref"),
            client_ref=client_ref,
            referrer=referrer,
            topic=topic,
            urgency=urgency,
            postcode_area=postcode_area,
            consent_id=new_id("cns"),
            received_at=at,
        )
        if region is None:
            referral._decline(
                DeclineReason.OUTSIDE_REGION,
                "Buiten ons werkgebied: verwijs naar het sociaal wijkteam van de eigen gemeente.",
                at,
            )
            return referral
        referral.organisation_id = region.organisation_id
        referral.municipality = region.municipality
        referral._record(
            ConsentGranted(
                consent_id=referral.consent_id,
                client_ref=client_ref,
                organisation_id=region.organisation_id,
                given_by=consent_given_by,
                partner_organisation_id=referrer.organisation_id,
                purpose=ConsentPurpose.REFERRAL_FEEDBACK,
                granted_at=at,
            )
        )
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
                consent_id=referral.consent_id,
                received_at=at,
            )
        )
        referral._tell_referrer(ReferralStatus.RECEIVED, at)
        return referral

    def accept(self, region: Region, at: datetime) -> None:
        if self.state is not ReferralState.RECEIVED:
            raise DomainError(f"referral {self.id} is {self.state}, it cannot be accepted")
        self.state = ReferralState.ACCEPTED
        self._record(
            ReferralAccepted(
                referral_id=self.id,
                client_ref=self.client_ref,
                organisation_id=region.organisation_id,
                funder=region.municipality,
                work_type=region.work_type,
                referrer_type=self.referrer.type,
                topic=self.topic,
                postcode_area=self.postcode_area,
                crisis=self.urgency.crisis,
                consent_id=self.consent_id,
                received_at=self.received_at,
                accepted_at=at,
            )
        )
        self._tell_referrer(ReferralStatus.ACCEPTED, at)

    def _decline(self, reason: DeclineReason, redirect: str, at: datetime) -> None:
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
