"""Events partner organisations send to the chain, each on the partner's own inbound topic.

A partner that runs a Kafka client publishes these with the contracts package alone; the
partner simulator in the devstack does exactly that.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.events.intake import Urgency
from ketenbus.contracts.topics import Topic, partner_inbound
from ketenbus.contracts.values import (
    ConsentGiver,
    ConsentPurpose,
    OrganisationId,
    PartnerReferralId,
    ReferralTopic,
    ReferrerType,
    Sealed,
    ShortText,
)


class _PartnerEvent(Event):
    owner: ClassVar[str] = "partners"

    partner_organisation_id: OrganisationId

    def destination(self) -> Topic:
        return partner_inbound(self.partner_organisation_id)


class ConsentStatement(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    given_by: ConsentGiver
    purposes: tuple[ConsentPurpose, ...]
    granted_at: AwareDatetime


class ReferralSubmitted(_PartnerEvent):
    """A referral from a Kafka-capable partner: the same content as the HTTP front door.

    The person's details are sealed with the key the partner shares with intake.
    """

    referrer_type: ReferrerType
    referrer_reference: ShortText
    topic: ReferralTopic
    urgency: Urgency
    consent: ConsentStatement
    client: Sealed
    submitted_at: AwareDatetime

    @property
    def subject(self) -> str:
        return self.referrer_reference


class _HandOffAnswer(_PartnerEvent):
    partner_referral_id: PartnerReferralId

    @property
    def subject(self) -> str:
        return self.partner_referral_id


class PartnerReferralAccepted(_HandOffAnswer):
    accepted_at: AwareDatetime


class PartnerReferralDeclined(_HandOffAnswer):
    reason: ShortText
    declined_at: AwareDatetime


class PartnerStatus(StrEnum):
    INTAKE_DONE = "intake_done"
    STABILISING = "stabilising"
    ARRANGEMENT_RUNNING = "arrangement_running"
    ON_HOLD = "on_hold"


class PartnerStatusChanged(_HandOffAnswer):
    status: PartnerStatus
    changed_at: AwareDatetime


class PartnerOutcome(StrEnum):
    ARRANGEMENT_COMPLETED = "arrangement_completed"
    STABILISED = "stabilised"
    STOPPED = "stopped"


class PartnerCompleted(_HandOffAnswer):
    outcome: PartnerOutcome
    completed_at: AwareDatetime
