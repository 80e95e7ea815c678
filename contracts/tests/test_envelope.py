from datetime import UTC, datetime

import pytest

from ketenbus.contracts.envelope import (
    InvalidEventData,
    MalformedEnvelope,
    UnknownEventType,
    UnsupportedEventVersion,
    caused_by,
    decode,
    wrap,
)
from ketenbus.contracts.events import (
    REGISTRY,
    AppointmentMissed,
    KpiCell,
    KpiSnapshotPublished,
    ReferralStatusChanged,
)
from ketenbus.contracts.values import new_id

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def missed() -> AppointmentMissed:
    return AppointmentMissed(
        trajectory_id=new_id("trj"),
        client_ref=new_id("cl"),
        organisation_id="welzijn-utrecht",
        appointment_id=new_id("apt"),
        kind="intake",
        starts_at=NOW,
        worker_id="w.jansen",
        registered_at=NOW,
    )


def test_an_event_survives_the_round_trip_with_its_type_version_and_key():
    event = missed()
    envelope = wrap(event, source="trajectory")

    decoded = decode(envelope.to_bytes(), REGISTRY)

    assert decoded == envelope
    assert decoded.type == "nl.ketenbus.trajectory.AppointmentMissed.v1"
    assert decoded.subject == event.client_ref
    assert decoded.data.destination().name == "ketenbus.trajectory.trajectories.v1"


def test_a_caused_event_carries_the_chain_of_ids():
    cause = wrap(missed(), source="trajectory")
    effect = wrap(missed(), source="notifications", **caused_by(cause))
    assert effect.correlationid == cause.correlationid == cause.id
    assert effect.causationid == cause.id


def test_partner_feedback_goes_to_the_partners_own_topic_keyed_by_referral():
    event = ReferralStatusChanged(
        referral_id=new_id("ref"),
        referrer_organisation_id="huisarts-de-linde",
        status="accepted",
        changed_at=NOW,
    )
    assert event.destination().name == "ketenbus.partners.huisarts-de-linde.outbound.v1"
    assert event.subject == event.referral_id


def test_tuples_of_nested_values_decode_strictly_from_json():
    cell = KpiCell(
        funder="Utrecht",
        work_type="general_social_work",
        online_dossier_used=True,
        period="2026-Q1",
        closed_cases=None,
        suppressed=True,
    )
    snapshot = KpiSnapshotPublished(
        snapshot_id="kpi_" + "0" * 32,
        organisation="Organisatie A",
        pseudonymised=True,
        period="2026-Q1",
        cells=(cell,),
        published_at=NOW,
    )
    assert decode(wrap(snapshot, source="analytics").to_bytes(), REGISTRY).data == snapshot


@pytest.mark.parametrize(
    ("mutate", "error", "says"),
    [
        (lambda raw: b"not json", MalformedEnvelope, "not an event envelope"),
        (lambda raw: b"[1, 2]", MalformedEnvelope, "not an event envelope"),
        (lambda raw: raw.replace(b'"1.0"', b'"0.3"'), MalformedEnvelope, "specversion"),
        (lambda raw: raw.replace(b".v1", b".v9"), UnsupportedEventVersion, "v9"),
        (lambda raw: raw.replace(b"AppointmentMissed", b"Nonsense"), UnknownEventType, "Nonsense"),
        (lambda raw: raw.replace(b'"intake"', b'"dinner"'), InvalidEventData, "data.kind"),
        (lambda raw: raw.replace(b'"kind"', b'"kindly"'), InvalidEventData, "data.kind"),
        (lambda raw: b" " * 300_000, MalformedEnvelope, "exceeds"),
    ],
)
def test_a_message_that_cannot_be_read_says_why(mutate, error, says):
    raw = wrap(missed(), source="trajectory").to_bytes()
    with pytest.raises(error) as caught:
        decode(mutate(raw), REGISTRY)
    assert says in caught.value.reason


def test_types_are_strict_no_silent_coercion():
    raw = wrap(missed(), source="trajectory").to_bytes()
    event = missed()
    as_number = raw.replace(f'"{event.worker_id}"'.encode(), b"42")
    with pytest.raises(InvalidEventData, match="worker_id"):
        decode(as_number, REGISTRY)


def test_error_messages_never_echo_the_input():
    raw = wrap(missed(), source="trajectory").to_bytes()
    secret = b"Jan de Vries 0612345678"
    with pytest.raises(InvalidEventData) as caught:
        decode(raw.replace(b'"intake"', b'"' + secret + b'"'), REGISTRY)
    assert "Jan" not in caught.value.reason


def test_readers_tolerate_fields_they_do_not_know_yet():
    raw = wrap(missed(), source="trajectory").to_bytes()
    newer = raw.replace(b'"kind":', b'"added_in_a_later_release":true,"kind":')
    assert decode(newer, REGISTRY).data.kind == "intake"


def test_every_event_names_its_owner_version_and_a_topic():
    for event_type, cls in REGISTRY.items():
        # A later version's class carries its version in its name: KpiSnapshotPublishedV2.
        later = f"V{cls.version}" if cls.version > 1 else ""
        assert cls.__name__ == f"{cls.name}{later}"
        assert event_type == f"nl.ketenbus.{cls.owner}.{cls.name}.v{cls.version}"
        assert cls.__doc__ is None or cls.__doc__.strip()
