"""The demo year from start to report: put the services on the simulation's clock, play the
year, let analytics catch up, share benchmark snapshots, print the steering figures and write
the dashboards and CSV files under `<home>/reports/`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from ketenbus.contracts.values import Language
from ketenbus.devstack import partner_keys
from ketenbus.devstack.chain_client import ChainClient, ChainError, eventually
from ketenbus.devstack.narration import Narrator, chosen_language
from ketenbus.devstack.partners import DebtCounsellingPartner
from ketenbus.devstack.report import (
    SIGNAL_TABLE,
    Reports,
    own_counts_table,
    sector_table,
    sector_tables,
    settled_totals,
    totals,
    write_reports,
)
from ketenbus.devstack.simulation import (
    LOCAL,
    Year,
    YearCounts,
    YearOptions,
    clock_environment,
)
from ketenbus.devstack.stack import SERVICES, EmbeddedStack
from ketenbus.devstack.year_scenario import AREAS, DEBT_COUNSELLING, caseloads
from ketenbus.kit.clock import ScaledClock
from ketenbus.kit.wording import DEFAULT

# Seconds the services get to start again on the new clock before the year begins (at
# least; a machine that took longer to start the stack gets as long as that took).
BOOT_SECONDS = 25.0
PSEUDONYMISED = "welzijn-heuvelrug"  # shares its benchmark snapshot under a pseudonym


@dataclass
class YearResult:
    options: YearOptions
    counts: YearCounts
    totals: dict[str, dict[str, Any]]
    year_figures: dict[str, dict[str, Any]]
    problems: list[str]
    reports: Reports
    snapshots: int = 0
    # The whole calendar period they cover (a quarter or year that ended: shared_period).
    snapshot_period: str = ""
    real_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Real seconds of each stage, in order, by the narration's key ("stage.year", ...).
    timings: dict[str, float] = field(default_factory=dict)
    # The figures' words, as analytics answered them in the report's language.
    labels: dict[str, str] = field(default_factory=dict)
    language: Language = DEFAULT
    # Each organisation's sector table of the year, as analytics prints it for a terminal.
    sector_tables: dict[str, str] = field(default_factory=dict)
    # The early-warning figures of the year per organisation, and their words.
    signal_figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    signal_labels: dict[str, str] = field(default_factory=dict)

    @property
    def period(self) -> str:
        return f"{self.options.start.astimezone(LOCAL):%Y}"


def demo_intake_settings(stack: EmbeddedStack, options: YearOptions) -> dict[str, str]:
    """Intake's settings for the demo year: caseloads scaled to its residents, so a small
    year meets waiting lists too; the signals' deadlines checked every real second (a
    simulated day at the demo's speed: the default minute would be two simulated months, and
    a signal's window of 14 days would pass unflagged); and the partners' referral limits
    scaled to the year's pace."""
    capacity = stack.home / "demo-caseloads.json"
    capacity.write_text(json.dumps({"organisations": caseloads(options.clients)}, indent=2))
    return {
        "CAPACITY_FILE": str(capacity),
        "SIGNAL_CHECK_SECONDS": "1",
        **referral_limits(options),
    }


def referral_limits(options: YearOptions) -> dict[str, str]:
    """The limits stop a partner's system in a loop at 60 referrals a real minute, while a
    GP practice refers a few a day. The demo presses a year into minutes: 3,000 residents in
    the default year are some 740 referrals a real minute, which that limit refused by the
    hundred.
    Three times the year's average, for its busy weeks, and never below the default."""
    year_minutes = options.days * 86_400 / options.speed / 60
    per_minute = options.clients / year_minutes
    return {
        "REFERRAL_RATE_PER_MINUTE": str(max(60, round(3 * per_minute))),
        "REFERRAL_BURST": str(max(20, round(per_minute / 4))),
    }


def put_on_clock(
    stack: EmbeddedStack,
    options: YearOptions,
    out: TextIO | None,
    boot: float = BOOT_SECONDS,
    say: Narrator | None = None,
) -> float:
    """Restart every service with the simulation's clock, which starts `boot` seconds from
    now (the year cannot wait for a service that is late: it would begin behind its plan);
    returns the clock's anchor."""
    anchor = time.time() + boot
    if out:
        say = say or Narrator(DEFAULT)
        print(
            say("on_clock", days=say.number(options.days), speed=say.number(options.speed)),
            file=out,
            flush=True,
        )
    restart_services(stack, options, lambda: options.clock(anchor))
    return anchor


def put_at_real_pace(
    stack: EmbeddedStack,
    options: YearOptions,
    anchor: float,
    out: TextIO | None,
    say: Narrator | None = None,
) -> ScaledClock:
    """Restart every service on the year's clock (`options.clock(anchor)`) at real pace,
    from the moment it reached when they had all stopped: time never goes back for them,
    and the stack left for browsing stands still (no more simulated years of reminders,
    deletions and timers, no core kept busy). Returns the services' new clock."""
    year = options.clock(anchor)
    if out:
        print(f"\n{(say or Narrator(DEFAULT))('real_pace')}", file=out, flush=True)
    return restart_services(stack, options, lambda: ScaledClock(year.now(), time.time(), 1.0))


def restart_services(
    stack: EmbeddedStack, options: YearOptions, clock: Callable[[], ScaledClock]
) -> ScaledClock:
    """Stop every service, then start them all on the clock `clock()` gives once they have
    stopped (the year's clock runs on while they stop), intake with the demo year's
    settings (demo_intake_settings); returns that clock once they are all ready."""
    sized = demo_intake_settings(stack, options)
    # All stop at once (each may take a few seconds to finish its work), then all start.
    processes = [replica for name in SERVICES for replica in stack.replicas_of(name)]
    with ThreadPoolExecutor(len(processes)) as stopping:
        list(stopping.map(stack.stop_service, processes))
    started = clock()
    environment = clock_environment(started)
    for name in SERVICES:
        extra = sized if name == "intake" else {}
        stack.start_replicas(name, extra_env={**environment, **extra})
    stack.wait_ready(processes, timeout=120)
    return started


async def play_year(
    stack: EmbeddedStack,
    options: YearOptions,
    anchor: float,
    *,
    out: TextIO | None = sys.stdout,
    reports_dir: Path | None = None,
    language: Language | None = None,
) -> YearResult:
    """Play the year on services already running on `options.clock(anchor)`, then report in
    `language` (else `KETENBUS_DEMO_LANGUAGE`, else Dutch)."""
    language = language or chosen_language()
    started = time.monotonic()
    timings: dict[str, float] = {}
    chain = ChainClient(stack.urls(), stack.api_token, stack.kafka, stack.replica_urls())
    try:
        # `ketenbus demo` clears its own engines first, but servers given from outside keep
        # what earlier demos left: the check compares what analytics counts from here on.
        before = await totals(chain, sorted(AREAS))
        wait = anchor - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        year_started = time.monotonic()
        async with debt_partner(stack, options.clock(anchor).now) as partner:
            counts = await Year(
                chain, options, anchor, out=out, partner=partner, say=Narrator(language)
            ).run()
        timings["stage.year"] = time.monotonic() - year_started
        organisations = sorted(counts.organisations)
        settling = time.monotonic()
        found, problems = await settled_totals(chain, counts, before)
        timings["stage.catching_up"] = time.monotonic() - settling
        reporting = time.monotonic()
        period = f"{options.start.astimezone(LOCAL):%Y}"
        shared, ends = shared_period(options)
        # Analytics takes a snapshot only of a period that has ended on its clock: the
        # chain's clock passes the period's end at most a simulated day after the year's.
        clock = options.clock(anchor)
        await asyncio.sleep(clock.real_seconds(ends - clock.now()) + 0.1)
        snapshots = await share_snapshots(chain, organisations, shared)
        year_figures, labels = await figures_of_the_year(
            chain, organisations, "/v1/figures", "cells", period, language
        )
        signal_figures, signal_labels = await figures_of_the_year(
            chain, organisations, "/v1/signal-figures", "rows", period, language
        )
        tables = await sector_tables(chain, organisations, period, language)
        reports = await write_reports(
            chain, organisations, reports_dir or stack.reports_dir, language, period
        )
        timings["stage.reports"] = time.monotonic() - reporting
    finally:
        await chain.close()
    return YearResult(
        options,
        counts,
        found,
        year_figures,
        problems,
        reports,
        snapshots=snapshots,
        snapshot_period=shared,
        real_seconds=time.monotonic() - started,
        timings=timings,
        labels=labels,
        language=language,
        sector_tables=tables,
        signal_figures=signal_figures,
        signal_labels=signal_labels,
    )


async def figures_of_the_year(
    chain: ChainClient,
    organisations: list[str],
    route: str,
    rows: str,
    period: str,
    language: Language,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each organisation's row for the year `period` from an analytics figures route (its
    rows under `rows`), and the route's labels in `language`."""
    figures: dict[str, dict[str, Any]] = {}
    labels: dict[str, str] = {}
    for organisation in organisations:
        answer = await chain.analytics(organisation, route, period="year", lang=language)
        labels = answer["labels"]
        figures[organisation] = next((r for r in answer[rows] if r["period"] == period), {})
    return figures, labels


@contextlib.asynccontextmanager
async def debt_partner(
    stack: EmbeddedStack, now: Callable[[], datetime]
) -> AsyncIterator[DebtCounsellingPartner]:
    """The debt-counselling partner on its own Kafka topics, on the year's clock."""
    partner = DebtCounsellingPartner(
        DEBT_COUNSELLING,
        stack.kafka,
        sharing_key=partner_keys.key(stack.home, DEBT_COUNSELLING),
        accept=False,  # the year says when it answers, and how
        now=now,
    )
    async with partner:
        yield partner


def shared_period(options: YearOptions) -> tuple[str, datetime]:
    """The whole calendar period the organisations share with the sector, and when it ends.
    Analytics takes a snapshot only of a quarter or year that has ended (a snapshot of a
    running period and its later replacement would both stay on the topic). So: the year the
    demo began in, when the played days reach its end (the default year: 1 January to 1
    January), else the last quarter they reach the end of (the tests' shortened year of March:
    the first quarter). A day's grace, because a played year ends at the hour it began, just
    after its last midnight. With no quarter ended in the played days, the one before them
    (with no figures)."""
    first = options.start.astimezone(LOCAL)
    reach = (options.end + timedelta(days=1)).astimezone(LOCAL)
    if reach.year > first.year:
        return f"{first.year:04d}", datetime(first.year + 1, 1, 1, tzinfo=LOCAL)
    ended = (reach.month - 1) // 3  # quarters of the year wholly before `reach`
    if ended == 0:
        return f"{reach.year - 1:04d}-Q4", datetime(reach.year, 1, 1, tzinfo=LOCAL)
    return f"{reach.year:04d}-Q{ended}", datetime(reach.year, 3 * ended + 1, 1, tzinfo=LOCAL)


async def share_snapshots(chain: ChainClient, organisations: list[str], period: str) -> int:
    """Every organisation shares `period` (shared_period) with the sector benchmark (one under
    a pseudonym), and waits until analytics has them all, so the dashboards can compare."""
    shared = 0
    for organisation in organisations:
        try:
            await chain._call(
                "POST",
                "analytics",
                "/v1/benchmark/snapshots",
                organisation,
                "manager",
                json={"period": period, "pseudonymise": organisation == PSEUDONYMISED},
            )
            shared += 1
        except ChainError:
            continue
    if not shared or not organisations:
        return shared

    async def all_in() -> Any:
        answer = await chain.analytics(organisations[0], "/v1/benchmark", period=period)
        return answer if len(answer["organisations"]) >= shared else None

    with contextlib.suppress(ChainError):
        await eventually(all_in, "the benchmark snapshots in analytics", timeout=30)
    return shared


def print_report(result: YearResult, stack: EmbeddedStack, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    say = Narrator(result.language)
    counts = result.counts
    referred = counts.total("referral", "received")
    print(
        "\n"
        + say(
            "year",
            period=result.period,
            planned=say.number(counts.planned),
            signals=say.number(counts.total("signal", "received")),
            referred=say.number(referred),
            declined=say.number(counts.declined),
        ),
        file=out,
    )
    print(f"\n{say('steering_figures', period=result.period)}\n", file=out)
    print(sector_table(result.year_figures, result.labels, result.language), file=out)
    print(f"\n{say('signal_figures', period=result.period)}\n", file=out)
    signals = sector_table(
        result.signal_figures, result.signal_labels, result.language, SIGNAL_TABLE
    )
    print(signals, file=out)
    for organisation, table in sorted(result.sector_tables.items()):
        heading = say("sector_table", period=result.period, organisation=organisation)
        print(f"\n{heading}\n", file=out)
        print(table.rstrip("\n"), file=out)
    print(f"\n{say('own_counts')}\n", file=out)
    print(own_counts_table(counts, say), file=out)
    if result.problems:
        print(f"\n{say('differ')}", file=out)
        for problem in result.problems:
            print(f"  {problem}", file=out)
    else:
        print(f"\n{say('agree')}", file=out)
    if counts.missing:
        print(f"\n{say('not_simulated', features=', '.join(sorted(counts.missing)))}", file=out)
    if counts.failed:
        print(f"\n{say('refused', failed=say.number(counts.failed))}", file=out)
        for failure in counts.failures:
            print(f"  {failure}", file=out)
    print(f"\n{say('where_to_look')}", file=out)
    print(where_to_look(result, stack, say), file=out)
    print(f"\n{say('still_running')}", file=out)
    print(f"\n{time_taken(result, say)}", file=out)


def where_to_look(result: YearResult, stack: EmbeddedStack, say: Narrator) -> str:
    urls = stack.urls()
    rows: list[tuple[str, str]] = []
    first = sorted(result.reports.dashboards)[0] if result.reports.dashboards else None
    if first:
        token = stack.api_token(first, "manager")
        rows.append((say("look.dashboard_live"), f"{urls['analytics']}/dashboard#key={token}"))
        rows.append(
            ("", say("look.demo_key", organisation=first, file=stack.home / "api-tokens.json"))
        )
    rows += [
        (say("look.dashboard_file"), str(path))
        for _, path in sorted(result.reports.dashboards.items())
    ]
    rows.append((say("look.figures_csv"), str(result.reports.figures_csv)))
    rows.append((say("look.mix_csv"), str(result.reports.mix_csv)))
    if result.reports.sector_csv is not None:
        rows.append((say("look.sector_csv"), str(result.reports.sector_csv)))
    rows.append(
        (
            say("look.metrics"),
            f"{urls['analytics']}/metrics  (ketenbus_open_trajectories, ketenbus_waiting_list, "
            "ketenbus_no_show_rate)",
        )
    )
    rows.append(("", f"{urls['notifications']}/metrics  (ketenbus_reminders_due)"))
    rows += [
        (say("look.asyncapi", service=service), f"{urls[service]}/asyncapi") for service in SERVICES
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def time_taken(result: YearResult, say: Narrator) -> str:
    """How long the demo took, stage by stage, and how far behind its plan it ran."""
    counts = result.counts
    stages = ", ".join(
        f"{say(stage)} {say.number(seconds)} s" for stage, seconds in result.timings.items()
    )
    latest = ""
    if counts.latest is not None:
        action, planned = counts.latest
        # The action's name is the simulation's own; the moment is written the same in both.
        moment = f"{planned.astimezone(LOCAL):%Y-%m-%d %H:%M}"
        latest = say("at_worst", action=action.split()[0], moment=moment)
    speed = result.options.speed
    took = say("took", total=say.number(sum(result.timings.values())), stages=stages)
    behind = say(
        "behind",
        worst=say.number(counts.worst_lag_hours, 1),
        most=say.number(counts.lag_hours(0.95), 1),
        share=say.percent(0.95),
        actions=say.number(len(counts.lags)),
        half=say.number(counts.lag_hours(0.5), 1),
        latest=latest,
        speed=say.number(speed),
        hours=say.number(speed / 3600),
    )
    return f"{took}\n{behind}"


def seconds_since_start() -> float | None:
    """Real seconds since this process started (Linux), None where that cannot be read."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as uptime:
            up = float(uptime.read().split()[0])
        return up - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_demo_year(stack: EmbeddedStack, options: YearOptions | None = None) -> YearResult:
    options = options or YearOptions.from_environment()
    say = Narrator(chosen_language())
    # `ketenbus demo` started the stack (if it was not running) before it called us.
    before_us = seconds_since_start()
    places = ", ".join(f"{o} {say.number(n)}" for o, n in caseloads(options.clients).items())
    intro = say("intro", residents=say.number(options.clients), caseloads=places)
    print(f"\n{intro}\n", flush=True)
    restarting = time.monotonic()
    # Services start about as fast as the stack did: on a busy machine that is slower.
    boot = min(max(BOOT_SECONDS, before_us or 0.0), 60.0)
    anchor = put_on_clock(stack, options, sys.stdout, boot, say)
    # Until the year begins at the clock's anchor (or at once, when restarting took longer).
    on_clock = time.monotonic() - restarting + max(anchor - time.time(), 0.0)
    result = asyncio.run(play_year(stack, options, anchor, language=say.language))
    result.timings = {
        **({"stage.starting": before_us} if before_us is not None else {}),
        "stage.on_clock": on_clock,
        **result.timings,
    }
    print_report(result, stack)
    # The stack stays up to browse: on the year's pace more simulated years would pass.
    put_at_real_pace(stack, options, anchor, sys.stdout, say)
    return result
