"""What clients read: plain Dutch (B1) and English, calm and supportive.

Never the reason for help, never money or debts: someone else may read the phone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ketenbus.contracts.values import Language, ReminderPurpose


@dataclass(frozen=True)
class Message:
    subject: str
    text: str


_TEMPLATES: dict[tuple[ReminderPurpose, Language], Message] = {
    (ReminderPurpose.MISSED_APPOINTMENT_FOLLOW_UP, Language.NL): Message(
        subject="We hebben u gemist",
        text=(
            "Beste {name},\n\n"
            "We hadden een afspraak met u, maar we hebben u niet gezien. Dat kan gebeuren.\n"
            "Hoe gaat het met u? Wij helpen u graag verder.\n\n"
            "Wilt u een nieuwe afspraak maken? Bel ons of stuur een bericht. "
            "Dan zoeken we samen een moment dat u goed uitkomt.\n\n"
            "Met vriendelijke groet,\nUw contactpersoon"
        ),
    ),
    (ReminderPurpose.MISSED_APPOINTMENT_FOLLOW_UP, Language.EN): Message(
        subject="We missed you",
        text=(
            "Dear {name},\n\n"
            "We had an appointment with you, but we did not see you. That can happen.\n"
            "How are you? We are happy to keep helping you.\n\n"
            "Would you like a new appointment? Call us or send a message, "
            "and we will find a time that suits you.\n\n"
            "Kind regards,\nYour contact person"
        ),
    ),
}


def render(purpose: ReminderPurpose, language: Language, *, name: str) -> Message:
    template = _TEMPLATES[(purpose, language)]
    return Message(subject=template.subject, text=template.text.format(name=name))


def all_templates() -> dict[tuple[ReminderPurpose, Language], Message]:
    return dict(_TEMPLATES)
