"""What clients read: plain Dutch (B1) and English, calm and supportive.

Never the reason for help, never money or debts, never a threat: someone else may read the
phone (see `wording.FORBIDDEN_WORDS`, which a test holds every template to). SMS texts use
only the GSM 7-bit alphabet and stay short; e-mails come as plain text with an HTML twin.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ketenbus.contracts.events import WorkerNote
from ketenbus.contracts.values import Channel, Language, ReminderPurpose


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class MailTemplate:
    subject: str
    body: str


NL, EN = Language.NL, Language.EN
P = ReminderPurpose

MAIL: dict[tuple[ReminderPurpose, Language], MailTemplate] = {
    (P.APPOINTMENT_REMINDER, NL): MailTemplate(
        subject="Herinnering: uw afspraak op {day}",
        body=(
            "Beste {name},\n\n"
            "Dit is een herinnering aan uw afspraak: {what} op {when}.\n\n"
            "Lukt het niet? Dat is geen probleem. Laat het ons even weten, "
            "dan maken we samen een nieuwe afspraak. {contact}\n\n"
            "Tot dan!\n{sender}"
        ),
    ),
    (P.APPOINTMENT_REMINDER, EN): MailTemplate(
        subject="Reminder: your appointment on {day}",
        body=(
            "Dear {name},\n\n"
            "This is a reminder of your appointment: {what} on {when}.\n\n"
            "Can't make it? That is all right. Just let us know "
            "and we will find a new time together. {contact}\n\n"
            "See you then!\n{sender}"
        ),
    ),
    (P.MISSED_APPOINTMENT_FOLLOW_UP, NL): MailTemplate(
        subject="We hebben u gemist",
        body=(
            "Beste {name},\n\n"
            "We hadden een afspraak met u, maar we hebben u niet gezien. Dat kan gebeuren.\n"
            "Hoe gaat het met u? Wij helpen u graag verder.\n\n"
            "Wilt u een nieuwe afspraak maken? {contact} "
            "Dan zoeken we samen een moment dat u goed uitkomt.\n\n"
            "Met vriendelijke groet,\n{sender}"
        ),
    ),
    (P.MISSED_APPOINTMENT_FOLLOW_UP, EN): MailTemplate(
        subject="We missed you",
        body=(
            "Dear {name},\n\n"
            "We had an appointment with you, but we did not see you. That can happen.\n"
            "How are you? We are happy to keep helping you.\n\n"
            "Would you like a new appointment? {contact} "
            "Together we will find a time that suits you.\n\n"
            "Kind regards,\n{sender}"
        ),
    ),
    (P.WAITLIST_INVITATION, NL): MailTemplate(
        subject="U staat op onze wachtlijst",
        body=(
            "Beste {name},\n\n"
            "Bedankt voor uw aanmelding. U staat nu op onze wachtlijst. "
            "We nemen zo snel mogelijk contact met u op.\n\n"
            "Wilt u alvast iets doen terwijl u wacht? Op onze website staan korte online "
            "oefeningen en een vragenlijst over hoe het met u gaat. U kiest zelf of u dat "
            "wilt.\n\n"
            "{link}\n\n"
            "Heeft u een vraag? {contact}\n\n"
            "Met vriendelijke groet,\n{sender}"
        ),
    ),
    (P.WAITLIST_INVITATION, EN): MailTemplate(
        subject="You are on our waiting list",
        body=(
            "Dear {name},\n\n"
            "Thank you for signing up. You are now on our waiting list. "
            "We will contact you as soon as we can.\n\n"
            "Would you like to start on something while you wait? Our website has short "
            "online exercises and a questionnaire about how you are doing. It is up to you "
            "whether you use them.\n\n"
            "{link}\n\n"
            "Any questions? {contact}\n\n"
            "Kind regards,\n{sender}"
        ),
    ),
    (P.MODULE_NUDGE, NL): MailTemplate(
        subject="Hoe gaat het met uw online programma?",
        body=(
            "Beste {name},\n\n"
            "U bent een tijdje geleden begonnen met een online programma. Hoe gaat het "
            "ermee? U kunt verder gaan waar u gebleven was:\n\n"
            "{link}\n\n"
            "Lukt het even niet, of heeft u een vraag? Dat is helemaal goed. {contact}\n\n"
            "Met vriendelijke groet,\n{sender}"
        ),
    ),
    (P.MODULE_NUDGE, EN): MailTemplate(
        subject="How is your online programme going?",
        body=(
            "Dear {name},\n\n"
            "A while ago you started an online programme. How is it going? "
            "You can carry on where you left off:\n\n"
            "{link}\n\n"
            "Is it not working out right now, or do you have a question? That is fine. "
            "{contact}\n\n"
            "Kind regards,\n{sender}"
        ),
    ),
}

SMS: dict[tuple[ReminderPurpose, Language], str] = {
    (P.APPOINTMENT_REMINDER, NL): (
        "Hallo {name}, herinnering: {what_short} op {when_short}. Lukt het niet? {contact_short}"
    ),
    (P.APPOINTMENT_REMINDER, EN): (
        "Hello {name}, reminder: {what_short} on {when_short}. Can't make it? {contact_short}"
    ),
    (P.MISSED_APPOINTMENT_FOLLOW_UP, NL): (
        "Hallo {name}, we hebben u gemist bij de afspraak. Dat kan gebeuren. "
        "Wilt u een nieuwe afspraak? {contact_short}"
    ),
    (P.MISSED_APPOINTMENT_FOLLOW_UP, EN): (
        "Hello {name}, we missed you at the appointment. That can happen. "
        "Would you like a new one? {contact_short}"
    ),
    (P.WAITLIST_INVITATION, NL): (
        "Hallo {name}, u staat op onze wachtlijst. We nemen snel contact op. "
        "Alvast beginnen? {link}"
    ),
    (P.WAITLIST_INVITATION, EN): (
        "Hello {name}, you are on our waiting list. We will contact you soon. Start now? {link}"
    ),
    (P.MODULE_NUDGE, NL): (
        "Hallo {name}, u was bezig met een online programma. Verder gaan kan hier: {link}"
    ),
    (P.MODULE_NUDGE, EN): ("Hello {name}, you started an online programme. Carry on here: {link}"),
}

MAIL_FOOTER = {
    NL: "\n\n--\nLiever geen e-mail meer van ons? Gebruik deze link: {opt_out_link}",
    EN: "\n\n--\nRather not get e-mails from us? Use this link: {opt_out_link}",
}
SMS_FOOTER = {NL: " Geen sms meer? Stuur STOP.", EN: " No more texts? Reply STOP."}

SENDER = {NL: "Uw contactpersoon", EN: "Your contact person"}
CONTACT = {
    NL: ("Bel ons op {phone} of stuur ons een bericht.", "Neem gerust contact met ons op."),
    EN: ("Call us on {phone} or send us a message.", "Feel free to get in touch."),
}
CONTACT_SHORT = {NL: ("Bel {phone}.", "Laat het ons weten."), EN: ("Call {phone}.", "Let us know.")}
WHAT = {
    NL: {
        "face_to_face": ("een gesprek bij ons", "afspraak"),
        "video": ("een videogesprek", "videogesprek"),
        "phone": ("een telefoongesprek, wij bellen u", "telefoongesprek"),
    },
    EN: {
        "face_to_face": ("a meeting with us", "appointment"),
        "video": ("a video call", "video call"),
        "phone": ("a phone call, we will call you", "phone call"),
    },
}

# Notes for the social worker's team mailbox. Still no reason for help: mail gets forwarded.
WORKER_MAIL: dict[tuple[WorkerNote, Language], MailTemplate] = {
    (WorkerNote.CLIENT_MISSED_APPOINTMENT, NL): MailTemplate(
        subject="Afspraak gemist: cliënt {client_ref}",
        body=(
            "Cliënt {client_ref} is niet gekomen op de afspraak van {when}.\n"
            "Traject: {trajectory_id}\nMedewerker: {worker_id}\n\n"
            "De cliënt krijgt op {follow_up_when} een vriendelijk bericht. Daarin staat: we "
            "hebben u gemist, hoe kunnen we helpen, en hoe maakt u een nieuwe afspraak.\n"
            "Misschien wilt u de cliënt zelf ook even bellen."
        ),
    ),
    (WorkerNote.CLIENT_MISSED_APPOINTMENT, EN): MailTemplate(
        subject="Appointment missed: client {client_ref}",
        body=(
            "Client {client_ref} did not come to the appointment of {when}.\n"
            "Trajectory: {trajectory_id}\nWorker: {worker_id}\n\n"
            "The client will get a kind message on {follow_up_when}. It says: we missed you, "
            "how can we help, and how to make a new appointment.\n"
            "You may want to give the client a call yourself as well."
        ),
    ),
    (WorkerNote.REMINDER_FAILED, NL): MailTemplate(
        subject="Bericht niet bezorgd: cliënt {client_ref}",
        body=(
            "Een bericht aan cliënt {client_ref} kon niet worden bezorgd.\n"
            "Soort bericht: {purpose_label}\nReden: {reason}\nTraject: {trajectory_id}\n\n"
            "Kloppen het telefoonnummer en het e-mailadres van de cliënt nog? "
            "Neem zo nodig zelf contact op."
        ),
    ),
    (WorkerNote.REMINDER_FAILED, EN): MailTemplate(
        subject="Message not delivered: client {client_ref}",
        body=(
            "A message to client {client_ref} could not be delivered.\n"
            "Kind of message: {purpose_label}\nReason: {reason}\nTrajectory: {trajectory_id}\n\n"
            "Are the client's phone number and e-mail address still right? "
            "Get in touch yourself if needed."
        ),
    ),
}

PURPOSE_LABEL = {
    NL: {
        P.APPOINTMENT_REMINDER: "herinnering aan een afspraak",
        P.MISSED_APPOINTMENT_FOLLOW_UP: "bericht na een gemiste afspraak",
        P.WAITLIST_INVITATION: "uitnodiging tijdens de wachttijd",
        P.MODULE_NUDGE: "herinnering aan een online programma",
        P.WORKER_NOTE: "notitie voor het team",
    },
    EN: {
        P.APPOINTMENT_REMINDER: "appointment reminder",
        P.MISSED_APPOINTMENT_FOLLOW_UP: "message after a missed appointment",
        P.WAITLIST_INVITATION: "invitation while waiting",
        P.MODULE_NUDGE: "online programme reminder",
        P.WORKER_NOTE: "note for the team",
    },
}


class _Blank(dict[str, str]):
    """A value the message does not have reads as "-", never as a crash."""

    def __missing__(self, key: str) -> str:
        return "-"


def fill(template: str, values: dict[str, str]) -> str:
    return template.format_map(_Blank(values))


def client_mail(
    purpose: ReminderPurpose, language: Language, values: dict[str, str], opt_out_link: str
) -> Message:
    template = MAIL[(purpose, language)]
    text = fill(template.body, values) + fill(MAIL_FOOTER[language], {"opt_out_link": opt_out_link})
    return Message(subject=fill(template.subject, values), text=text, html=as_html(text))


def client_sms(purpose: ReminderPurpose, language: Language, values: dict[str, str]) -> Message:
    text = fill(SMS[(purpose, language)], values) + SMS_FOOTER[language]
    return Message(subject="", text=text)


def worker_mail(note: WorkerNote, language: Language, values: dict[str, str]) -> Message:
    template = WORKER_MAIL[(note, language)]
    text = fill(template.body, values)
    return Message(subject=fill(template.subject, values), text=text, html=as_html(text))


def render_client(
    purpose: ReminderPurpose,
    language: Language,
    channel: Channel,
    values: dict[str, str],
    opt_out_link: str,
) -> Message:
    if channel is Channel.SMS:
        return client_sms(purpose, language, values)
    return client_mail(purpose, language, values, opt_out_link)


_URL = re.compile(r"https?://[^\s<>\"]+")


def as_html(text: str) -> str:
    """The HTML twin of a plain-text message: the same words, links made clickable."""
    paragraphs = []
    for block in text.split("\n\n"):
        escaped = html.escape(block)
        linked = _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        paragraphs.append(f"<p>{linked.replace(chr(10), '<br>')}</p>")
    return (
        '<!doctype html><html><body style="font-family:sans-serif;font-size:16px;'
        'line-height:1.5">' + "".join(paragraphs) + "</body></html>"
    )


def all_template_texts() -> dict[str, str]:
    """Every template text by a readable key: for the test that reads them all."""
    texts: dict[str, str] = {}
    for (purpose, language), mail in MAIL.items():
        texts[f"mail/{purpose}/{language}/subject"] = mail.subject
        texts[f"mail/{purpose}/{language}/body"] = mail.body
    for (purpose, language), sms in SMS.items():
        texts[f"sms/{purpose}/{language}"] = sms
    for (note, language), mail in WORKER_MAIL.items():
        texts[f"worker/{note}/{language}/subject"] = mail.subject
        texts[f"worker/{note}/{language}/body"] = mail.body
    for language in Language:
        texts[f"footer/mail/{language}"] = MAIL_FOOTER[language]
        texts[f"footer/sms/{language}"] = SMS_FOOTER[language]
        texts[f"sender/{language}"] = SENDER[language]
        texts[f"contact/{language}"] = " ".join(CONTACT[language] + CONTACT_SHORT[language])
        for modality, words in WHAT[language].items():
            texts[f"what/{modality}/{language}"] = " ".join(words)
        for purpose, label in PURPOSE_LABEL[language].items():
            texts[f"label/{purpose}/{language}"] = label
    return texts
