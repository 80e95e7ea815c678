"""Retention is a decision of the topic registry: the streams keep every event, partner
topics are a mailbox, and a dead-letter topic never outlives the topic it came from."""

from __future__ import annotations

from ketenbus.contracts import topics
from ketenbus.contracts.events.intake import NOTIFICATIONS_CARD, is_partner_card, partner_card


def test_the_streams_a_rebuild_replays_keep_every_event() -> None:
    for topic in topics.INTERNAL_TOPICS:
        if topic.compaction is None:
            assert topic.config() == {"retention.ms": "-1", "retention.bytes": "-1"}, topic.name


def test_the_contacts_topic_is_compacted_and_keeps_tombstones_a_week() -> None:
    """The latest card per key stays; a tombstone removes the card at the next compaction."""
    settings = topics.CONTACTS.config()
    assert settings["cleanup.policy"] == "compact"
    assert settings["max.compaction.lag.ms"] == str(topics.DAY_MS)
    assert settings["delete.retention.ms"] == str(7 * topics.DAY_MS)
    compacted = [t.name for t in topics.INTERNAL_TOPICS if t.compaction is not None]
    assert compacted == [topics.CONTACTS.name]


def test_a_partners_topics_keep_thirty_days() -> None:
    for topic in topics.topics_for_partners(["huisarts-de-linde"]):
        assert topic.retention_ms == 30 * topics.DAY_MS


def test_a_dead_letter_topic_never_keeps_a_record_longer_than_its_source() -> None:
    for topic in (*topics.INTERNAL_TOPICS, *topics.topics_for_partners(["huisarts-de-linde"])):
        assert topic.dlq_retention_ms > 0
        if topic.retention_ms != topics.KEEP_FOREVER:
            assert topic.dlq_retention_ms <= topic.retention_ms, topic.name
    short = topics.Topic("t", "x", "a topic kept a day", retention_ms=topics.DAY_MS)
    assert short.dlq_retention_ms == topics.DAY_MS


def test_each_recipients_card_of_a_client_has_a_key_of_its_own() -> None:
    """Compaction keeps one record per key: notifications' card and each partner's card of
    the same client must not replace one another."""
    client = "cl_" + "a" * 32
    mine = topics.contact_card_key(client, NOTIFICATIONS_CARD)
    partners = {topics.contact_card_key(client, partner_card(p)) for p in ("schuld-a", "schuld-b")}
    assert len(partners | {mine}) == 3
    assert all(topics.client_of_contact_card(key) == client for key in partners | {mine})
    assert all(is_partner_card(key) for key in partners) and not is_partner_card(mine)
