"""The referral's rules, without a server: triage, the waiting list, duplicates, the loop."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

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
    ReferralTopic,
    ReferrerType,
    WorkType,
    new_id,
)
from ketenbus.intake.domain import (
    Consent,
    Organisation,
    Referral,
    ReferralState,
    Referrer,
    consent_partner,
    triage,
    waitlist_position,
)
from ketenbus.intake.partners import describe
from ketenbus.intake.personal import PersonalDetails
from ketenbus.intake.regions import CapacityTable, Region, RegionTable
from ketenbus.kit.errors import DomainError

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
REGIONS = RegionTable.load()
UTRECHT = REGIONS.route("3512")
CRISIS = Urgency(threatened_eviction=True)
CALM = Urgency()


def received(
    *,
    region=UTRECHT,
    urgency: Urgency = CALM,
    feedback: bool = True,
    duplicate_of: str | None = None,
    referrer: str = "huisarts-de-linde",
) -> Referral:
    return Referral.receive(
        client_ref=new_id("cl"),
        referrer=Referrer(ReferrerType.GP, referrer, "HDL-1"),
        topic=ReferralTopic.PSYCHOSOCIAL,
        urgency=urgency,
        postcode_area="3512",
        consent_id=new_id("cns"),
        feedback_allowed=feedback,
        region=region,
        duplicate_of=duplicate_of,
        at=NOW,
    )


def loop(referral: Referral) -> list[str]:
    return [e.status.value for e in referral.events if isinstance(e, ReferralStatusChanged)]


def test_the_region_table_routes_postcodes_and_knows_the_debt_partner():
    assert UTRECHT is not None and UTRECHT.organisation_id == "welzijn-utrecht"
    assert UTRECHT.municipality == "Utrecht" and UTRECHT.work_type is WorkType.GENERAL
    assert UTRECHT.debt_counselling_partner == "schuldhulp-midden"
    assert REGIONS.route("3811").organisation_id == "welzijn-amersfoort"
    assert REGIONS.route("3701").municipality == "Zeist"
    assert REGIONS.route("1011") is None  # Amsterdam: outside the region
    assert CapacityTable.load().of("welzijn-utrecht") == 60
    assert CapacityTable.load().of("nobody-known") is None


def test_outside_the_region_a_referral_is_declined_with_a_redirect_and_nothing_else():
    referral = received(region=None)

    assert referral.state is ReferralState.DECLINED
    assert [type(e) for e in referral.events] == [ReferralDeclined, ReferralStatusChanged]
    status = referral.events[-1]
    assert status.reason.value == "outside_region" and "gemeente" in status.redirect


def test_with_a_place_free_the_referral_is_accepted_and_the_place_taken():
    referral, organisation = received(), Organisation("welzijn-utrecht", capacity=2, occupied=1)

    triage(referral, organisation, position=1, at=NOW)

    assert referral.state is ReferralState.ACCEPTED
    assert organisation.occupied == 2 and not organisation.has_room
    assert [type(e) for e in referral.events] == [
        ReferralReceived,
        ReferralStatusChanged,
        ReferralAccepted,
        ReferralStatusChanged,
    ]
    assert loop(referral) == ["received", "accepted"]


def test_a_full_caseload_puts_the_referral_on_the_waiting_list():
    referral, organisation = received(), Organisation("welzijn-utrecht", capacity=1, occupied=1)

    triage(referral, organisation, position=3, at=NOW)

    assert referral.state is ReferralState.WAITLISTED
    assert organisation.occupied == 1
    waitlisted = next(e for e in referral.events if isinstance(e, ClientWaitlisted))
    assert waitlisted.position == 3
    assert loop(referral) == ["received", "waitlisted"]


def test_a_crisis_waits_behind_other_crises_only():
    assert waitlist_position(crisis=True, waiting_crises=1, waiting=5) == 2
    assert waitlist_position(crisis=False, waiting_crises=1, waiting=5) == 6
    assert Organisation("unlimited", capacity=None, occupied=10_000).has_room


def test_leaving_the_waiting_list_opens_help_and_tells_the_referrer_accepted():
    referral = received(urgency=CRISIS)
    triage(referral, Organisation("o", capacity=0), position=1, at=NOW)
    referral.events.clear()

    referral.admit(NOW + timedelta(days=3))

    [exited, status] = referral.events
    assert isinstance(exited, WaitlistExited) and exited.crisis is True
    assert exited.received_at == NOW and exited.funder == "Utrecht"
    assert status.status.value == "accepted"
    with pytest.raises(DomainError):
        referral.admit(NOW)


def test_erasure_while_waiting_ends_the_wait_as_declined_for_want_of_consent():
    waiting, helped = received(), received()
    triage(waiting, Organisation("o", capacity=0), position=1, at=NOW)
    triage(helped, Organisation("o", capacity=1), position=1, at=NOW)

    waiting.withdraw_from_waitlist(NOW)
    helped.withdraw_from_waitlist(NOW)

    assert waiting.state is ReferralState.WITHDRAWN
    assert waiting.events[-2].reason.value == "no_consent"
    assert loop(waiting) == ["received", "waitlisted", "declined"]
    assert helped.state is ReferralState.ACCEPTED and loop(helped) == ["received", "accepted"]
    with pytest.raises(DomainError):
        waiting.admit(NOW)


def test_a_duplicate_is_linked_to_the_open_referral_and_mirrors_it():
    original = received()
    triage(original, Organisation("o", capacity=5), position=1, at=NOW)
    original.first_contact(NOW + timedelta(days=1))
    duplicate = received(duplicate_of=original.id, referrer="huisarts-oosterpoort")

    duplicate.link_to(original, NOW + timedelta(days=2))

    assert duplicate.state is ReferralState.LINKED and duplicate.duplicate_of == original.id
    assert loop(duplicate) == ["received", "accepted", "first_contact"]
    assert not any(isinstance(e, ReferralAccepted) for e in duplicate.events)
    assert duplicate.events[0].duplicate_of == original.id
    assert duplicate.close(NOW + timedelta(days=9)) is True
    assert loop(duplicate)[-1] == "closed"


def test_the_loop_never_repeats_or_goes_back_and_closes_once():
    referral = received()
    triage(referral, Organisation("o", capacity=5), position=1, at=NOW)
    referral.first_contact(NOW)
    referral.first_contact(NOW + timedelta(hours=1))

    assert referral.close(NOW + timedelta(days=30)) is True
    assert referral.close(NOW + timedelta(days=31)) is False
    referral.first_contact(NOW + timedelta(days=32))  # late news of an earlier contact

    assert loop(referral) == ["received", "accepted", "first_contact", "closed"]


def test_without_consent_for_feedback_the_referrer_hears_nothing():
    silent = received(feedback=False)
    triage(silent, Organisation("o", capacity=5), position=1, at=NOW)
    stopped = received()
    triage(stopped, Organisation("o", capacity=5), position=1, at=NOW)

    stopped.stop_feedback()
    stopped.first_contact(NOW)
    stopped.close(NOW)

    assert loop(silent) == []
    assert any(isinstance(e, ReferralAccepted) for e in silent.events)  # help goes on
    assert loop(stopped) == ["received", "accepted"]
    assert stopped.state is ReferralState.CLOSED


def test_consent_is_per_partner_and_purpose_and_withdrawn_once():
    consent = Consent.grant(
        client_ref=new_id("cl"),
        organisation_id="welzijn-utrecht",
        partner_organisation_id="schuldhulp-midden",
        purpose=ConsentPurpose.DEBT_COUNSELLING,
        given_by=ConsentGiver.CLIENT,
        granted_at=NOW,
    )
    consent.withdraw(NOW + timedelta(days=1))

    assert [type(e) for e in consent.events] == [ConsentGranted, ConsentWithdrawn]
    assert not consent.active
    with pytest.raises(DomainError):
        consent.withdraw(NOW + timedelta(days=2))
    assert consent_partner(ConsentPurpose.REFERRAL_FEEDBACK, "huisarts-x", UTRECHT) == "huisarts-x"
    assert consent_partner(ConsentPurpose.DEBT_COUNSELLING, "x", UTRECHT) == "schuldhulp-midden"
    assert consent_partner(ConsentPurpose.REMINDERS, "x", UTRECHT) == "welzijn-utrecht"


def test_a_refusal_names_the_fields_and_never_the_values():
    with pytest.raises(ValidationError) as error:
        PersonalDetails(
            name="Geheime Naam",
            date_of_birth=date(1988, 4, 12),
            postcode="not a postcode",
            phone="06-1234",
            email="geheim@@voorbeeld..nl",
        )

    reason = describe(error.value)

    assert "postcode" in reason and "phone" in reason and "email" in reason
    for value in ("not a postcode", "06-1234", "geheim", "voorbeeld", "Geheime"):
        assert value not in reason


def test_material_debt_is_no_work_type_a_region_can_serve():
    with pytest.raises(ValueError, match="not a work type"):
        RegionTable([Region(3500, 3585, "Utrecht", "welzijn-utrecht", WorkType.MATERIAL)])
