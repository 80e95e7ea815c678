"""`make demo` shortened: a few simulated weeks through the five real services, and the report's
figures checked against what the simulation itself did; then a replay of the topics must
rebuild exactly the figures the live projection shows."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaConsumer

from ketenbus.contracts.events import (
    ALL_EVENTS,
    AppointmentCancelled,
    AppointmentRegistrationOverdue,
    AppointmentRescheduled,
    KpiSnapshotPublished,
    ModuleAbandoned,
    PartnerReferralWithdrawn,
    ReferralRejected,
    ReferralSubmitted,
    ReminderFailed,
    ReminderRescheduled,
    SignalDataDeleted,
    TrajectoryPhaseChanged,
)
from ketenbus.contracts.values import Language
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.mail_sink import read_mailbox
from ketenbus.devstack.narration import Narrator
from ketenbus.devstack.report import OWN_COUNTS
from ketenbus.devstack.simulation import YearOptions
from ketenbus.devstack.sms_sink import read_sms
from ketenbus.devstack.stack import SERVICES
from ketenbus.devstack.working_hours import moments_in, within_working_hours
from ketenbus.devstack.year import BOOT_SECONDS, demo_intake_settings, play_year, print_report
from ketenbus.kit.broker import partitions_of

pytestmark = [pytest.mark.stack, pytest.mark.chain, pytest.mark.long]

# What the shortened year must see at least once (the plan guarantees a few of each).
DONE_IN_A_SHORT_YEAR = (
    ("signal", "received"),
    ("outreach", "attempted"),
    ("signal", "reached"),
    ("signal", "accepted"),
    ("signal", "declined"),
    ("module", "started"),
    ("questionnaire", "completed"),
    ("homework", "submitted"),
    ("homework", "feedback"),
    ("hand_off", "requested"),
    ("partner", "accepted"),
    ("partner", "declined"),
    ("partner", "status"),
    ("partner", "completed"),
    ("consent", "withdrawn"),
    ("opt_out", "link"),
    ("erasure", "requested"),
)
# The catalogue's event types the demo year does not produce, and why.
NOT_PRODUCED_BY_THE_YEAR = {
    ReferralSubmitted.event_type(): "the year's referrers refer over HTTP, not on a topic",
    ReferralRejected.event_type(): "only for an unreadable referral on a partner's topic",
    TrajectoryPhaseChanged.event_type(): "the year's workers do not set phases by hand",
    AppointmentRescheduled.event_type(): "the year's workers do not move appointments",
    AppointmentCancelled.event_type(): "the year's workers do not cancel appointments",
    ReminderRescheduled.event_type(): "follows a moved appointment; none is moved",
    ReminderFailed.event_type(): "the mail and SMS sinks take every message",
    AppointmentRegistrationOverdue.event_type(): "every appointment is registered in time",
    ModuleAbandoned.event_type(): "21 idle days; a shortened year's modules are shorter",
    KpiSnapshotPublished.event_type(): "analytics publishes v2 (no funder); v1 stays readable",
}


# Produced by the whole year, but in a shortened one only when the machine keeps up.
NOT_SURELY_IN_A_SHORT_YEAR = {
    PartnerReferralWithdrawn.event_type(): "needs the year's third hand-off, which a short "
    "year with waiting lists on a busy machine may not reach",
    SignalDataDeleted.event_type(): "six months after a signal arrived (a month is too short), "
    "or at the erasure of a client who came by a signal (the month's erasure is a self-referral)",
}


def event_types_on_the_bus(kafka: KafkaAccess) -> set[str]:
    """The event type of every message on every topic of the stack (dead letters apart)."""

    async def read() -> set[str]:
        consumer = AIOKafkaConsumer(**kafka.client_options(), enable_auto_commit=False)
        await consumer.start()
        try:
            topics = [t for t in await consumer.topics() if not t.endswith(".dlq")]
            partitions = await partitions_of(consumer, topics)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            left = {p for p in partitions if ends[p] > 0}
            found: set[str] = set()
            while left:
                for partition, records in (await consumer.getmany(timeout_ms=1000)).items():
                    for record in records:
                        with contextlib.suppress(ValueError, TypeError, KeyError):
                            found.add(json.loads(record.value)["type"])
                    if await consumer.position(partition) >= ends[partition]:
                        left.discard(partition)
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


# A month with a few dozen residents: enough for all three organisations, closed cases,
# no-shows, modules, homework and hand-offs, and light enough for a busy two-core machine.
OPTIONS = YearOptions(
    start=datetime(2025, 3, 1, 7, 0, tzinfo=ZoneInfo("Europe/Amsterdam")),
    days=int(os.environ.get("KETENBUS_TEST_DEMO_DAYS", 30)),
    clients=int(os.environ.get("KETENBUS_TEST_DEMO_CLIENTS", 24)),
    # Slow enough that a machine busy with other tests keeps up with the plan.
    speed=float(os.environ.get("KETENBUS_TEST_DEMO_SPEED", 60_000)),
    seed=96,  # a month that sees every outcome of a signal and of a hand-off, and aftercare
)


async def test_a_shortened_year_reports_exactly_what_the_simulation_did(
    chain, tmp_path, monkeypatch
):
    stack = chain(isolated=True, timeout=120)  # Kafka and SecantusDB first: they take a while
    # The services' year starts this long from now: twice what a calm machine needs, so a
    # machine busy with other tests does not begin the year weeks behind its plan.
    anchor = time.time() + 2 * BOOT_SECONDS
    on_clock = OPTIONS.clock_environment(anchor)
    stack.start_services([s for s in SERVICES if s != "intake"], on_clock)
    stack.start_service("intake", {**on_clock, **demo_intake_settings(stack, OPTIONS)})
    await stack.wait_ready_async(timeout=120)

    # Dutch unless asked: the people who read the figures work in Dutch.
    monkeypatch.delenv("KETENBUS_LANGUAGE", raising=False)
    monkeypatch.delenv("KETENBUS_DEMO_LANGUAGE", raising=False)
    result = await play_year(stack, OPTIONS, anchor, out=None, reports_dir=tmp_path / "reports")
    printed = io.StringIO()
    print_report(result, stack, out=printed)
    report = printed.getvalue()
    print(report)

    counts = result.counts
    assert result.problems == [], result.problems
    # Only a hand-off whose consent trajectory has not heard of in time may be refused.
    assert all(f.startswith("debt hand-off") for f in counts.failures), counts.failures
    assert counts.missing == set(), counts.missing
    organisations = sorted(counts.organisations)
    assert organisations == ["welzijn-amersfoort", "welzijn-heuvelrug", "welzijn-utrecht"]
    referred = counts.total("referral", "received")
    # Every planned resident referred, or signalled and not (yet) accepting help.
    signalled_only = counts.total("signal", "received") - counts.total("signal", "accepted")
    assert referred + counts.declined + signalled_only == OPTIONS.clients
    assert counts.total("trajectory", "closed") > 0
    for organisation, own in counts.organisations.items():
        total = result.totals[organisation]
        assert total["closed_cases"] == own["trajectory", "closed"]
        assert total["intake_missed"] == own["intake", "missed"]
        assert total["modules_completed"] == own["module", "completed"]
        # The report prints the year's table with the same figures analytics serves.
        year = result.year_figures[organisation]
        assert year["closed_cases"] == own["trajectory", "closed"]  # the run lies in the year
    # The worker answers homework too: the sector's homework figure is not left at zero.
    assert counts.total("homework", "answered") > 0
    assert any(result.year_figures[o]["homework_contacts_per_case"] for o in organisations)
    # What residents and the partner did, and the report says how often, in its words.
    say, words = Narrator(Language.NL), dict(OWN_COUNTS)
    for kind, outcome in DONE_IN_A_SHORT_YEAR:
        seen = {k: n for o in counts.organisations.values() for k, n in o.items() if k[0] == kind}
        assert counts.total(kind, outcome) > 0, (kind, outcome, seen)
        word = re.escape(say(f"own.{words[kind, outcome]}"))
        assert re.search(rf"^{word} +\d", report, re.MULTILINE), (kind, outcome)
    # The report in Dutch: the table in analytics' words, the narration around it too.
    assert result.language == "nl" and "Afgesloten casussen" in report
    assert "Stuurcijfers 2025 per organisatie" in report
    # The early-warning figures as analytics counts them: the simulation's signals, and the
    # one never followed up, flagged by intake once its window had passed.
    assert "Vroegsignalering 2025 per organisatie" in report
    signal_figures = result.signal_figures.values()
    assert sum(f.get("signals_received", 0) for f in signal_figures) == counts.total(
        "signal", "received"
    )
    assert sum(f.get("outreach_overdue", 0) for f in signal_figures) >= 1
    assert "De cijfers van analytics kloppen met de eigen tellingen van de simulatie" in report
    assert "Waar te kijken" in report and "/dashboard#key=" in report
    # Every label of "Waar te kijken" fits its column: the values start at one place.
    looks = report.split("Waar te kijken\n")[1].split("\n\n")[0].splitlines()
    starts = {re.match(r"  (?:\S+(?: \S+)*)? +", line).end() for line in looks}  # type: ignore[union-attr]
    assert len(starts) == 1, looks
    assert re.search(r"AsyncAPI notifications +http://", report)
    # The run says how long it took and how far behind its plan it ran.
    assert "Duurde " in report and "gesimuleerde uren achter op haar planning" in report
    assert counts.lags and counts.worst_lag_hours == max(counts.lags)
    for path in [*result.reports.dashboards.values(), result.reports.figures_csv]:
        assert path.exists() and path.stat().st_size > 0
    header = result.reports.figures_csv.read_text().splitlines()[0]
    assert header.startswith(
        "Organisatie,Periode,Financier,Werksoort,Hulpvraag,Online dossier gebruikt"
    )
    # The sector's own table: a CSV of its own, and per organisation in the terminal.
    assert result.reports.sector_csv is not None and result.reports.sector_csv.exists()
    assert "Met online dossier: casussen" in result.reports.sector_csv.read_text()
    assert "De tabel van de sector 2025" in report and "Totaal" in report
    # Appointments only in working hours on working days: every moment a client was told
    # of, by e-mail or SMS, lies on a weekday that is no public holiday, 08:30-19:00.
    told = [m.get_content() for m in read_mailbox(stack.mail_dir) if not m.is_multipart()]
    told += [
        part.get_content()
        for m in read_mailbox(stack.mail_dir)
        if m.is_multipart()
        for part in m.walk()
        if part.get_content_type() == "text/plain"
    ]
    told += [json.dumps(s["body"], ensure_ascii=False) for s in read_sms(stack.sms_dir)]
    moments = [at for text in told for at in moments_in(text, OPTIONS.start.year)]
    assert moments, "no appointment moment in any mail or SMS"
    outside = [at for at in moments if not within_working_hours(at)]
    assert outside == [], outside
    assert result.snapshots == 3

    # Every event type of the catalogue the year is meant to produce is on the bus.
    on_the_bus = await asyncio.to_thread(event_types_on_the_bus, stack.kafka)
    meant = {e.event_type() for e in ALL_EVENTS} - set(NOT_PRODUCED_BY_THE_YEAR)
    meant -= set(NOT_SURELY_IN_A_SHORT_YEAR)
    assert meant - on_the_bus == set()

    # The projection rebuilt from the topics gives exactly the live figures. The other
    # services stop first: on the accelerated clock their timers would keep publishing.
    for service in SERVICES:
        if service != "analytics":
            stack.stop_service(service)
    rebuilt = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ketenbus.analytics", "rebuild", "--verify"],
        env=stack.service_environment("analytics"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "exactly the live figures" in rebuilt.stdout
