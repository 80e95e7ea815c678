"""Events intake owns: referrals in, consent, triage, the waiting list, the closed loop."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ketenbus.contracts.envelope import Event
from ketenbus.contracts.topics import (
    CLIENTS,
    CONTACTS,
    REFERRALS,
    Topic,
    contact_card_key,
    partner_outbound,
)
from ketenbus.contracts.values import (
    Channel,
    ClientRef,
    ConsentGiver,
    ConsentId,
    ConsentPurpose,
    DeclineReason,
    Language,
    Municipality,
    OrganisationId,
    PostcodeArea,
    ReferralId,
    ReferralStatus,
    ReferralTopic,
    ReferrerType,
    Sealed,
    ShortText,
    WorkType,
)


class Urgency(BaseModel):
    """Crisis flags: a threatened eviction or disconnection means act at once."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    threatened_eviction: bool = False
    disconnection: bool = False

    @property
    def crisis(self) -> bool:
        return self.threatened_eviction or self.disconnection


class _IntakeEvent(Event):
    owner: ClassVar[str] = "intake"
    stream: ClassVar[Topic | None] = REFERRALS


class ReferralReceived(_IntakeEvent):
    referral_id: ReferralId
    client_ref: ClientRef
    organisation_id: OrganisationId
    municipality: Municipality
    postcode_area: PostcodeArea
    referrer_type: ReferrerType
    referrer_organisation_id: OrganisationId
    topic: ReferralTopic
    urgency: Urgency
    consent_id: ConsentId
    duplicate_of: ReferralId | None = None
    received_at: AwareDatetime


class ReferralAccepted(_IntakeEvent):
    referral_id: ReferralId
    client_ref: ClientRef
    organisation_id: OrganisationId
    funder: Municipality
    work_type: WorkType
    referrer_type: ReferrerType
    topic: ReferralTopic
    postcode_area: PostcodeArea
    crisis: bool
    consent_id: ConsentId
    received_at: AwareDatetime
    accepted_at: AwareDatetime


class ReferralDeclined(_IntakeEvent):
    referral_id: ReferralId
    client_ref: ClientRef
    organisation_id: OrganisationId
    reason: DeclineReason
    redirect: ShortText | None = None
    declined_at: AwareDatetime


class ClientWaitlisted(_IntakeEvent):
    referral_id: ReferralId
    client_ref: ClientRef
    organisation_id: OrganisationId
    position: int = Field(ge=1)
    waitlisted_at: AwareDatetime


class WaitlistExited(_IntakeEvent):
    referral_id: ReferralId
    client_ref: ClientRef
    organisation_id: OrganisationId
    funder: Municipality
    work_type: WorkType
    referrer_type: ReferrerType
    topic: ReferralTopic
    postcode_area: PostcodeArea
    consent_id: ConsentId
    received_at: AwareDatetime
    exited_at: AwareDatetime
    # Added within v1: a crisis leaves the waiting list first and is opened as one.
    crisis: bool = False


class _ClientEvent(Event):
    owner: ClassVar[str] = "intake"
    stream: ClassVar[Topic | None] = CLIENTS


class ConsentGranted(_ClientEvent):
    consent_id: ConsentId
    client_ref: ClientRef
    organisation_id: OrganisationId
    given_by: ConsentGiver
    partner_organisation_id: OrganisationId
    purpose: ConsentPurpose
    granted_at: AwareDatetime


class ConsentWithdrawn(_ClientEvent):
    consent_id: ConsentId
    client_ref: ClientRef
    organisation_id: OrganisationId
    partner_organisation_id: OrganisationId
    purpose: ConsentPurpose
    withdrawn_at: AwareDatetime


# The recipient part of the contacts topic's key for notifications' card.
NOTIFICATIONS_CARD = "notifications"
# ... and the start of it for a partner's card: `partner/<organisation>`, one per partner.
PARTNER_CARD_PREFIX = "partner/"


def partner_card(partner_organisation_id: str) -> str:
    """The recipient part of the key of the card sealed for a partner."""
    return PARTNER_CARD_PREFIX + partner_organisation_id


def is_partner_card(key: str) -> bool:
    """Whether a key of the contacts topic is that of a card sealed for a partner."""
    return key.partition("/")[2].startswith(PARTNER_CARD_PREFIX)


class ClientContactShared(_ClientEvent):
    """How to reach the client, sealed for notifications: never plaintext on the bus.

    On the compacted contacts topic, keyed by client and recipient: the erasure or the
    withdrawal of the last `reminders` consent writes a tombstone under the same key, and the
    next compaction removes the card from the topic."""

    stream: ClassVar[Topic | None] = CONTACTS

    client_ref: ClientRef
    organisation_id: OrganisationId
    language: Language
    preferred_channel: Channel
    contact: Sealed
    shared_at: AwareDatetime

    @property
    def key(self) -> str:
        return contact_card_key(self.client_ref, NOTIFICATIONS_CARD)


class PartnerContactSealed(_ClientEvent):
    """How a partner the client consented to may reach them, sealed with that partner's key.

    Trajectory keeps it unopened and passes it on at the hand-off; it cannot read it.
    On the compacted contacts topic, keyed by client and partner: the erasure or the
    withdrawal of the debt-counselling consent writes a tombstone under the same key, and the
    next compaction removes the card from the topic.
    """

    stream: ClassVar[Topic | None] = CONTACTS

    client_ref: ClientRef
    organisation_id: OrganisationId
    partner_organisation_id: OrganisationId
    consent_id: ConsentId
    purpose: ConsentPurpose
    # Name, phone and language only: the consented minimum.
    contact: Sealed
    sealed_at: AwareDatetime

    @property
    def key(self) -> str:
        return contact_card_key(self.client_ref, partner_card(self.partner_organisation_id))


class ClientErasureRequested(_ClientEvent):
    """Every service forgets the person; intake has already shredded the client's key."""

    client_ref: ClientRef
    organisation_id: OrganisationId
    requested_at: AwareDatetime


class ReferralStatusChanged(Event):
    """The closed loop: the referrer learns where its referral stands, never what it is about."""

    owner: ClassVar[str] = "intake"

    referral_id: ReferralId
    referrer_organisation_id: OrganisationId
    referrer_reference: ShortText | None = None
    status: ReferralStatus
    reason: DeclineReason | None = None
    redirect: ShortText | None = None
    changed_at: AwareDatetime

    @property
    def subject(self) -> str:
        return self.referral_id

    def destination(self) -> Topic:
        return partner_outbound(self.referrer_organisation_id)


class ReferralRejected(Event):
    """A partner's referral that could not be read: the partner is told why, on its topic."""

    owner: ClassVar[str] = "intake"

    referrer_organisation_id: OrganisationId
    referrer_reference: ShortText | None = None
    source_event_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(min_length=1, max_length=1000)
    rejected_at: AwareDatetime

    @property
    def subject(self) -> str:
        return self.referrer_reference or self.referrer_organisation_id

    def destination(self) -> Topic:
        return partner_outbound(self.referrer_organisation_id)
