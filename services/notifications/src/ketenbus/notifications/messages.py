"""A reminder in words: the template for its purpose, filled for this client and moment."""

from __future__ import annotations

from ketenbus.contracts.values import Channel, Language, ReminderPurpose
from ketenbus.notifications.contact import ContactCard
from ketenbus.notifications.domain import Reminder
from ketenbus.notifications.policies import OrganisationPolicy
from ketenbus.notifications.templates import (
    CONTACT,
    CONTACT_SHORT,
    PURPOSE_LABEL,
    SENDER,
    WHAT,
    Message,
    render_client,
    worker_mail,
)
from ketenbus.notifications.timing import short_moment, spoken_date, spoken_moment


def for_client(
    reminder: Reminder,
    card: ContactCard,
    language: Language,
    channel: Channel,
    policy: OrganisationPolicy,
    opt_out_link: str,
) -> Message:
    zone = policy.zone
    phone = policy.contact_phone
    values = {
        "name": card.name,
        "sender": policy.sender_name or SENDER[language],
        "contact": CONTACT[language][0].format(phone=phone) if phone else CONTACT[language][1],
        "contact_short": (
            CONTACT_SHORT[language][0].format(phone=phone) if phone else CONTACT_SHORT[language][1]
        ),
    }
    if reminder.appointment_starts_at is not None:
        starts = reminder.appointment_starts_at
        values.update(
            day=spoken_date(starts, zone, language),
            when=spoken_moment(starts, zone, language),
            when_short=short_moment(starts, zone, language),
        )
    if reminder.modality is not None:
        values["what"], values["what_short"] = WHAT[language][reminder.modality.value]
    if reminder.purpose is ReminderPurpose.WAITLIST_INVITATION:
        values["link"] = policy.self_help_url
    elif reminder.enrolment_id:
        values["link"] = f"{policy.portal_url.rstrip('/')}/enrolments/{reminder.enrolment_id}"
    return render_client(reminder.purpose, language, channel, values, opt_out_link)


def for_team(reminder: Reminder, policy: OrganisationPolicy) -> Message:
    assert reminder.worker_note is not None
    language = Language(policy.worker_language)
    zone = policy.zone
    values = {
        "client_ref": reminder.client_ref,
        "trajectory_id": reminder.trajectory_id or "-",
        "worker_id": reminder.worker_id or "-",
        "reason": reminder.about_reason or "-",
    }
    if reminder.appointment_starts_at is not None:
        values["when"] = spoken_moment(reminder.appointment_starts_at, zone, language)
    if reminder.about_due_at is not None:
        values["follow_up_when"] = spoken_moment(reminder.about_due_at, zone, language)
    if reminder.about_purpose is not None:
        values["purpose_label"] = PURPOSE_LABEL[language][reminder.about_purpose]
    return worker_mail(reminder.worker_note, language, values)
