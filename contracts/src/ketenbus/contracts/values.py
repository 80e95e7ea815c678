"""The words events are made of: references, the domain's enumerations and sealed data.

References are opaque and pseudonymous: a `ClientRef` says nothing about the person, it only
lets the chain keep one person's events together.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ClientRef = Annotated[str, StringConstraints(pattern=r"^cl_[0-9a-f]{32}$")]
ReferralId = Annotated[str, StringConstraints(pattern=r"^ref_[0-9a-f]{32}$")]
ConsentId = Annotated[str, StringConstraints(pattern=r"^cns_[0-9a-f]{32}$")]
TrajectoryId = Annotated[str, StringConstraints(pattern=r"^trj_[0-9a-f]{32}$")]
AppointmentId = Annotated[str, StringConstraints(pattern=r"^apt_[0-9a-f]{32}$")]
ContactId = Annotated[str, StringConstraints(pattern=r"^con_[0-9a-f]{32}$")]
EnrolmentId = Annotated[str, StringConstraints(pattern=r"^enr_[0-9a-f]{32}$")]
SubmissionId = Annotated[str, StringConstraints(pattern=r"^hws_[0-9a-f]{32}$")]
PartnerReferralId = Annotated[str, StringConstraints(pattern=r"^prf_[0-9a-f]{32}$")]
SignalId = Annotated[str, StringConstraints(pattern=r"^sig_[0-9a-f]{32}$")]
ReminderId = Annotated[str, StringConstraints(pattern=r"^rem_[0-9a-f]{32}$")]
WorkerId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]
OrganisationId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
ModuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
StepId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
# The four digits of a Dutch postcode: a neighbourhood, never an address.
PostcodeArea = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{3}$")]
Municipality = Annotated[str, StringConstraints(min_length=2, max_length=80)]
Minutes = Annotated[int, Field(ge=0, le=24 * 60)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ReferrerType(StrEnum):
    GP = "gp"
    MUNICIPALITY = "municipality"
    EARLY_WARNING = "early_warning"
    SCHOOL = "school"
    SELF = "self"
    NETWORK = "network"
    OUTREACH = "outreach"


class ReferralTopic(StrEnum):
    DEBTS_MATERIAL = "debts_material"
    PSYCHOSOCIAL = "psychosocial"
    RELATIONSHIPS = "relationships"
    PARENTING = "parenting"
    LONELINESS = "loneliness"
    OTHER = "other"


class WorkType(StrEnum):
    """Werksoort: the kind of social work a case is counted under. Material/debt problems
    are not a werksoort: they are the question topic debts_material, shown under general
    social work as its "of which" part. The value material_debt stays in the published v1
    schemas (removing an enumeration value breaks them); no service produces it, and analytics
    reads it as general social work about money and debts."""

    GENERAL = "general_social_work"
    SCHOOL = "school_social_work"
    ONLINE = "online_help"
    # Deprecated: readable in v1, never produced (docs/analytics.md).
    MATERIAL = "material_debt"


class CreditorKind(StrEnum):
    """Who may send an early-warning signal under the Wgs: the fixed-costs creditors."""

    HOUSING = "housing"  # a housing corporation or other landlord
    ENERGY = "energy"
    WATER = "water"
    HEALTH_INSURANCE = "health_insurance"


class OutreachMethod(StrEnum):
    """How the organisation tried to reach a resident after a signal."""

    LETTER = "letter"
    PHONE = "phone"
    HOME_VISIT = "home_visit"


class Language(StrEnum):
    NL = "nl"
    EN = "en"


class Channel(StrEnum):
    """A channel to reach a client on."""

    EMAIL = "email"
    SMS = "sms"


class DeclineReason(StrEnum):
    OUTSIDE_REGION = "outside_region"
    NOT_ELIGIBLE = "not_eligible"
    NO_CONSENT = "no_consent"
    INVALID_REFERRAL = "invalid_referral"


class ConsentPurpose(StrEnum):
    REFERRAL_FEEDBACK = "referral_feedback"
    DEBT_COUNSELLING = "debt_counselling"
    REMINDERS = "reminders"


class ConsentGiver(StrEnum):
    CLIENT = "client"
    PARENT = "parent"
    GUARDIAN = "guardian"


class ReferralStatus(StrEnum):
    """What a referrer may know about its referral: the closed loop, nothing more."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WAITLISTED = "waitlisted"
    FIRST_CONTACT = "first_contact"
    CLOSED = "closed"


class Phase(StrEnum):
    INTAKE = "intake"
    PLAN = "plan"
    GUIDANCE = "guidance"
    EVALUATION = "evaluation"
    AFTERCARE = "aftercare"


class AppointmentKind(StrEnum):
    INTAKE = "intake"
    FOLLOW_UP = "follow_up"


class Modality(StrEnum):
    FACE_TO_FACE = "face_to_face"
    VIDEO = "video"
    PHONE = "phone"


class ContactChannel(StrEnum):
    FACE_TO_FACE = "face_to_face"
    HOME_VISIT = "home_visit"
    PHONE = "phone"
    VIDEO = "video"
    CHAT = "chat"
    EMAIL = "email"
    DOSSIER_MESSAGE = "dossier_message"
    HOMEWORK = "homework"

    @property
    def online(self) -> bool:
        return self in {
            ContactChannel.VIDEO,
            ContactChannel.CHAT,
            ContactChannel.EMAIL,
            ContactChannel.DOSSIER_MESSAGE,
            ContactChannel.HOMEWORK,
        }


class ContactDirection(StrEnum):
    CLIENT_TO_WORKER = "client_to_worker"
    WORKER_TO_CLIENT = "worker_to_client"
    BOTH = "both"


class ClosureReason(StrEnum):
    GOAL_REACHED = "goal_reached"
    NO_CONTACT = "no_contact"
    CLIENT_STOPPED = "client_stopped"
    REFERRED_ON = "referred_on"


class StepKind(StrEnum):
    TEXT = "text"
    VIDEO = "video"
    EXERCISE = "exercise"
    QUESTIONNAIRE = "questionnaire"
    HOMEWORK = "homework"


class ReminderPurpose(StrEnum):
    APPOINTMENT_REMINDER = "appointment_reminder"
    MISSED_APPOINTMENT_FOLLOW_UP = "missed_appointment_follow_up"
    WORKER_NOTE = "worker_note"
    WAITLIST_INVITATION = "waitlist_invitation"
    MODULE_NUDGE = "module_nudge"


class Sealed(BaseModel):
    """Data encrypted for one recipient service with the client's own key (AES-GCM).

    `wrapped_key` is the client's data key, itself encrypted with a key shared by sender and
    recipient only. So the recipient can open its copy even after the owner shredded its own
    copy of the client's key: a sealed copy is forgotten only by deleting it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    key_id: str = Field(min_length=1, max_length=64)
    wrapped_key: str = Field(min_length=16, max_length=512)
    nonce: str = Field(min_length=8, max_length=64)
    ciphertext: str = Field(min_length=1, max_length=16_384)


def new_id(prefix: str) -> str:
    """A fresh opaque reference such as `cl_3f2a...`: random, so it reveals nothing."""
    return f"{prefix}_{random_hex()}"


def random_hex() -> str:
    """128 random bits as 32 hex digits. Not `uuid.uuid4().hex`: building the UUID object
    costs 2.8 µs, this 0.6, and a consumed event takes several."""
    return os.urandom(16).hex()
