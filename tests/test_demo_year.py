"""`make demo` shortened: a few simulated weeks through the five real services, and the report's
figures checked against what the simulation itself did; then a replay of the topics must
rebuild exactly the figures the live projection shows."""

from __future__ import annotations

import asyncio
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

from ketenbus.devstack.mail_sink import read_mailbox
from ketenbus.devstack.simulation import YearOptions
from ketenbus.devstack.sms_sink import read_sms
from ketenbus.devstack.stack import SERVICES
from ketenbus.devstack.working_hours import moments_in, within_working_hours
from ketenbus.devstack.year import BOOT_SECONDS, play_year, print_report

pytestmark = [pytest.mark.stack, pytest.mark.chain, pytest.mark.long]

# A month with a few dozen residents: enough for all three organisations, closed cases,
# no-shows, modules, homework and hand-offs, and light enough for a busy two-core machine.
OPTIONS = YearOptions(
    start=datetime(2025, 3, 1, 7, 0, tzinfo=ZoneInfo("Europe/Amsterdam")),
    days=int(os.environ.get("KETENBUS_TEST_DEMO_DAYS", 30)),
    clients=int(os.environ.get("KETENBUS_TEST_DEMO_CLIENTS", 24)),
    # Slow enough that a machine busy with other tests keeps up with the plan.
    speed=float(os.environ.get("KETENBUS_TEST_DEMO_SPEED", 60_000)),
    seed=7,
)


async def test_a_shortened_year_reports_exactly_what_the_simulation_did(
    chain, tmp_path, monkeypatch
):
    stack = chain(isolated=True, timeout=120)  # Kafka and SecantusDB first: they take a while
    anchor = time.time() + BOOT_SECONDS  # the services' year starts this long from now
    stack.start_services(SERVICES, OPTIONS.clock_environment(anchor))
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
    organisations = sorted(counts.organisations)
    assert organisations == ["welzijn-amersfoort", "welzijn-heuvelrug", "welzijn-utrecht"]
    referred = sum(o.referrals for o in counts.organisations.values())
    assert referred + counts.declined == OPTIONS.clients  # every planned resident referred
    assert sum(o.closed for o in counts.organisations.values()) > 0
    for organisation, own in counts.organisations.items():
        total = result.totals[organisation]
        assert total["closed_cases"] == own.closed
        assert total["intake_missed"] == own.intake_missed
        assert total["modules_completed"] == own.modules_completed
        # The report prints the year's table with the same figures analytics serves.
        year = result.year_figures[organisation]
        assert year["closed_cases"] == own.closed  # the whole run lies within the year
    # The worker answers homework too: the sector's homework figure is not left at zero.
    assert sum(o.homework_contacts for o in counts.organisations.values()) > 0
    assert any(result.year_figures[o]["homework_contacts_per_case"] for o in organisations)
    # The report in Dutch: the table in analytics' words, the narration around it too.
    assert result.language == "nl" and "Afgesloten casussen" in report
    assert "Stuurcijfers 2025 per organisatie" in report
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
