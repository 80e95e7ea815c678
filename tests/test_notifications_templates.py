"""Every message a client (or a team mailbox) can get: never the reason for help, never a
threat, plain enough to read at B1, and SMS texts that fit the GSM alphabet."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from ketenbus.contracts.events import WorkerNote
from ketenbus.contracts.values import Channel, Language, Modality, ReminderPurpose
from ketenbus.notifications import messages
from ketenbus.notifications.contact import ContactCard
from ketenbus.notifications.domain import Audience, Reminder
from ketenbus.notifications.policies import OrganisationPolicy, Policies
from ketenbus.notifications.templates import MAIL, SMS, WORKER_MAIL, all_template_texts
from ketenbus.notifications.wording import forbidden_words_in

CLIENT_PURPOSES = [p for p in ReminderPurpose if p is not ReminderPurpose.WORKER_NOTE]
STARTS = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)  # Tuesday 10:00 in Amsterdam
CARD = ContactCard(name="Alexandra", phone="06-12345678", email="a@example.org")
# The GSM 03.38 basic alphabet: an SMS with anything else is sent as UCS-2, in 70-character
# parts instead of 160.
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def reminder(purpose: ReminderPurpose, **about: object) -> Reminder:
    fields: dict[str, object] = {}
    if purpose in (ReminderPurpose.APPOINTMENT_REMINDER, ReminderPurpose.WORKER_NOTE):
        fields.update(appointment_id="apt_" + "1" * 32, appointment_starts_at=STARTS)
        fields.update(modality=Modality.VIDEO, trajectory_id="trj_" + "2" * 32)
    if purpose is ReminderPurpose.MISSED_APPOINTMENT_FOLLOW_UP:
        fields.update(appointment_id="apt_" + "1" * 32, appointment_starts_at=STARTS)
    if purpose is ReminderPurpose.MODULE_NUDGE:
        fields["enrolment_id"] = "enr_" + "3" * 32
    fields.update(about)
    return Reminder.schedule(
        client_ref="cl_" + "0" * 32,
        organisation_id="welzijn-utrecht",
        purpose=purpose,
        due_at=STARTS - timedelta(hours=24),
        at=STARTS - timedelta(days=2),
        **fields,
    )


def every_rendered_message() -> dict[str, str]:
    policy = Policies.load().of("welzijn-utrecht")
    rendered: dict[str, str] = {}
    for purpose in CLIENT_PURPOSES:
        for language in Language:
            for channel in Channel:
                message = messages.for_client(
                    reminder(purpose), CARD, language, channel, policy, "https://x.example/o/t"
                )
                key = f"{purpose}/{language}/{channel}"
                rendered[key] = f"{message.subject}\n{message.text}\n{message.html or ''}"
    for note in WorkerNote:
        for language in Language:
            team = policy.model_copy(update={"worker_language": language.value})
            note_reminder = reminder(
                ReminderPurpose.WORKER_NOTE,
                audience=Audience.WORKER,
                worker_note=note,
                about_purpose=ReminderPurpose.APPOINTMENT_REMINDER,
                about_due_at=STARTS,
                about_reason="the SMS provider refused the message (HTTP 400)",
            )
            message = messages.for_team(note_reminder, team)
            rendered[f"worker/{note}/{language}"] = f"{message.subject}\n{message.text}"
    return rendered


def test_the_word_check_finds_what_it_is_meant_to_find():
    # Without this the tests below could pass with an empty list.
    assert forbidden_words_in("Uw schulden en uw Geld") == ["schuld", "geld"]
    assert forbidden_words_in("Your DEBT counsellor, last chance!") == ["debt", "last chance"]
    assert forbidden_words_in("Herinnering aan uw afspraak") == []


def test_no_template_mentions_money_debts_the_reason_for_help_or_a_threat():
    texts = all_template_texts()
    assert len(texts) > 40  # every template, footer, label and phrase, in both languages
    offending = {key: forbidden_words_in(text) for key, text in texts.items()}
    assert {k: v for k, v in offending.items() if v} == {}


def test_no_rendered_message_does_either_in_any_language_or_channel():
    rendered = every_rendered_message()
    assert len(rendered) == len(CLIENT_PURPOSES) * 2 * 2 + len(WorkerNote) * 2
    offending = {key: forbidden_words_in(text) for key, text in rendered.items()}
    assert {k: v for k, v in offending.items() if v} == {}
    for key, text in rendered.items():
        assert "{" not in text and "}" not in text, f"unfilled placeholder in {key}"
        if not key.startswith("worker"):
            assert "-" not in text.split(), f"a value is missing in {key}"  # "-" fills a gap


def test_every_client_purpose_has_mail_and_sms_in_dutch_and_english():
    for purpose in CLIENT_PURPOSES:
        for language in Language:
            assert (purpose, language) in MAIL
            assert (purpose, language) in SMS
    for note in WorkerNote:
        for language in Language:
            assert (note, language) in WORKER_MAIL


def test_sms_texts_use_the_gsm_alphabet_and_stay_short():
    policy = Policies.load().of("welzijn-utrecht")
    for purpose in CLIENT_PURPOSES:
        for language in Language:
            text = messages.for_client(
                reminder(purpose), CARD, language, Channel.SMS, policy, "unused"
            ).text
            assert set(text) <= GSM7, (purpose, language, set(text) - GSM7)
            # One SMS; two joined parts (2 x 153) when it carries a link.
            limit = 306 if "https://" in text else 160
            assert len(text) <= limit, (purpose, language, len(text), text)
            assert "STOP" in text  # how to opt out, in every SMS


def test_sentences_stay_short_for_readers_at_b1():
    for key, text in all_template_texts().items():
        for sentence in re.split(r"[.!?]\s|\n", text):
            assert len(sentence.split()) <= 22, (key, sentence)


def test_an_appointment_reminder_says_when_in_the_clients_own_words():
    policy = Policies.load().of("welzijn-utrecht")
    message = messages.for_client(
        reminder(ReminderPurpose.APPOINTMENT_REMINDER),
        CARD,
        Language.NL,
        Channel.EMAIL,
        policy,
        "https://x.example/v1/opt-out/abc",
    )
    assert message.subject == "Herinnering: uw afspraak op dinsdag 3 maart"
    assert message.text.startswith("Beste Alexandra,")
    assert "een videogesprek op dinsdag 3 maart om 10:00 uur" in message.text
    assert "Bel ons op 030 123 45 67" in message.text
    assert "https://x.example/v1/opt-out/abc" in message.text
    assert '<a href="https://x.example/v1/opt-out/abc">' in (message.html or "")
    english = messages.for_client(
        reminder(ReminderPurpose.APPOINTMENT_REMINDER),
        CARD,
        Language.EN,
        Channel.SMS,
        policy,
        "unused",
    )
    assert "video call on Tue 3 Mar 10:00" in english.text


def test_a_name_with_markup_is_shown_as_text_in_the_html_mail():
    card = ContactCard(name="<b>Bo</b>", phone=None, email="b@example.org")
    message = messages.for_client(
        reminder(ReminderPurpose.MISSED_APPOINTMENT_FOLLOW_UP),
        card,
        Language.NL,
        Channel.EMAIL,
        OrganisationPolicy(),
        "https://x.example/o",
    )
    assert "&lt;b&gt;Bo&lt;/b&gt;" in (message.html or "")
    assert "<b>Bo</b>" not in (message.html or "")


def test_an_organisation_cannot_sign_with_a_name_that_gives_the_reason_away():
    with pytest.raises(ValueError, match="schuld"):
        OrganisationPolicy(sender_name="Team Schuldhulp Midden")
    assert OrganisationPolicy(sender_name="Buurtteam Oost").sender_name == "Buurtteam Oost"
