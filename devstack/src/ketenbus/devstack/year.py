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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ketenbus.devstack.chain_client import ChainClient, ChainError, eventually
from ketenbus.devstack.report import (
    Reports,
    own_counts_table,
    sector_table,
    sector_tables,
    settled_totals,
    totals,
    write_reports,
)
from ketenbus.devstack.simulation import LOCAL, Year, YearCounts, YearOptions
from ketenbus.devstack.stack import SERVICES, EmbeddedStack
from ketenbus.devstack.year_scenario import AREAS, caseloads

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
    real_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Real seconds of each stage, in order ("the year", "analytics catching up", ...).
    timings: dict[str, float] = field(default_factory=dict)
    # The figures' words and their language, as analytics answered them.
    labels: dict[str, str] = field(default_factory=dict)
    language: str = "nl"
    # Each organisation's sector table of the year, as analytics prints it for a terminal.
    sector_tables: dict[str, str] = field(default_factory=dict)

    @property
    def period(self) -> str:
        return f"{self.options.start.astimezone(LOCAL):%Y}"


def put_on_clock(
    stack: EmbeddedStack, options: YearOptions, out: TextIO | None, boot: float = BOOT_SECONDS
) -> float:
    """Restart every service with the simulation's clock, which starts `boot` seconds from
    now (the year cannot wait for a service that is late: it would begin behind its plan);
    returns the clock's anchor."""
    anchor = time.time() + boot
    environment = options.clock_environment(anchor)
    # Organisations the size of the demo year: intake's caseloads scaled to its residents.
    capacity = stack.home / "demo-caseloads.json"
    capacity.write_text(json.dumps({"organisations": caseloads(options.clients)}, indent=2))
    if out:
        print(
            f"putting the services on the simulation's clock: {options.days} days at "
            f"{options.speed:,.0f}x ...",
            file=out,
            flush=True,
        )
    # All stop at once (each may take a few seconds to finish its work), then all start.
    processes = [replica for name in SERVICES for replica in stack.replicas_of(name)]
    with ThreadPoolExecutor(len(processes)) as stopping:
        list(stopping.map(stack.stop_service, processes))
    for name in SERVICES:
        extra = {"CAPACITY_FILE": str(capacity)} if name == "intake" else {}
        stack.start_replicas(name, extra_env={**environment, **extra})
    stack.wait_ready(processes, timeout=120)
    return anchor


async def play_year(
    stack: EmbeddedStack,
    options: YearOptions,
    anchor: float,
    *,
    out: TextIO | None = sys.stdout,
    reports_dir: Path | None = None,
) -> YearResult:
    """Play the year on services already running on `options.clock(anchor)`, then report."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    chain = ChainClient(stack.urls(), stack.api_token, stack.kafka, stack.replica_urls())
    try:
        # On a stack that ran a demo before, analytics already counted that one: the check
        # compares what it counts from here on.
        before = await totals(chain, sorted(AREAS))
        wait = anchor - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        year_started = time.monotonic()
        counts = await Year(chain, options, anchor, out=out).run()
        timings["the year"] = time.monotonic() - year_started
        organisations = sorted(counts.organisations)
        settling = time.monotonic()
        found, problems = await settled_totals(chain, counts, before)
        timings["analytics catching up"] = time.monotonic() - settling
        reporting = time.monotonic()
        period = f"{options.start.astimezone(LOCAL):%Y}"
        snapshots = await share_snapshots(chain, organisations, period)
        year_figures: dict[str, dict[str, Any]] = {}
        # The report's language: KETENBUS_DEMO_LANGUAGE, else analytics' own (Dutch).
        asked = os.environ.get("KETENBUS_DEMO_LANGUAGE")
        labels, language = {}, asked or "nl"
        for organisation in organisations:
            answer = await chain.analytics(
                organisation, "/v1/figures", period="year", **({"lang": asked} if asked else {})
            )
            labels, language = answer["labels"], answer["language"]
            year_figures[organisation] = next(
                (c for c in answer["cells"] if c["period"] == period), {}
            )
        tables = await sector_tables(chain, organisations, period, language)
        reports = await write_reports(
            chain, organisations, reports_dir or stack.home / "reports", language, period
        )
        timings["benchmark and reports"] = time.monotonic() - reporting
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
        real_seconds=time.monotonic() - started,
        timings=timings,
        labels=labels,
        language=language,
        sector_tables=tables,
    )


async def share_snapshots(chain: ChainClient, organisations: list[str], period: str) -> int:
    """Every organisation shares its year with the sector benchmark (one under a pseudonym),
    and waits until analytics has them all, so the dashboards can compare."""
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
    counts = result.counts
    print(
        f"\nThe year {result.period}: {counts.planned} residents planned, "
        f"{sum(o.referrals for o in counts.organisations.values())} referred into the region, "
        f"{counts.declined} declined (outside the region).",
        file=out,
    )
    print(f"\nSteering figures {result.period} per organisation\n", file=out)
    print(sector_table(result.year_figures, result.labels, result.language), file=out)
    for organisation, table in sorted(result.sector_tables.items()):
        print(f"\nThe sector's table {result.period}, {organisation}\n", file=out)
        print(table.rstrip("\n"), file=out)
    print("\nWhat the simulation itself did\n", file=out)
    print(own_counts_table(counts), file=out)
    if result.problems:
        print("\nAnalytics differs from the simulation's own counts:", file=out)
        for problem in result.problems:
            print(f"  {problem}", file=out)
    else:
        print(
            "\nAnalytics' figures agree with the simulation's own counts "
            "(referrals, waiting list, closed cases, no-shows, modules, hand-offs, minutes).",
            file=out,
        )
    if counts.missing:
        print(
            "\nNot in the chain yet, so not simulated: " + ", ".join(sorted(counts.missing)),
            file=out,
        )
    if counts.failed:
        print(f"\n{counts.failed} actions were refused by the chain, e.g.:", file=out)
        for failure in counts.failures:
            print(f"  {failure}", file=out)
    print("\nWhere to look", file=out)
    print(where_to_look(result, stack), file=out)
    print("\nThe stack keeps running; `uv run ketenbus down` (or `make down`) stops it.", file=out)
    print(f"\n{time_taken(result)}", file=out)


def where_to_look(result: YearResult, stack: EmbeddedStack) -> str:
    urls = stack.urls()
    rows: list[tuple[str, str]] = []
    first = sorted(result.reports.dashboards)[0] if result.reports.dashboards else None
    if first:
        token = stack.api_token(first, "manager")
        rows.append(("dashboard (live)", f"{urls['analytics']}/dashboard#key={token}"))
        rows.append(
            (
                "",
                f"(the local demo key of {first}'s manager; every manager's key is in "
                f"{stack.home / 'api-tokens.json'})",
            )
        )
    rows += [
        ("dashboard (file)", str(path)) for _, path in sorted(result.reports.dashboards.items())
    ]
    rows.append(("figures (CSV)", str(result.reports.figures_csv)))
    rows.append(("referral mix (CSV)", str(result.reports.mix_csv)))
    if result.reports.sector_csv is not None:
        rows.append(("the sector's table (CSV)", str(result.reports.sector_csv)))
    rows.append(
        (
            "Prometheus metrics",
            f"{urls['analytics']}/metrics  (ketenbus_open_trajectories, ketenbus_waiting_list, "
            "ketenbus_no_show_rate)",
        )
    )
    rows.append(("", f"{urls['notifications']}/metrics  (ketenbus_reminders_due)"))
    rows += [(f"AsyncAPI {service}", f"{urls[service]}/asyncapi") for service in SERVICES]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def time_taken(result: YearResult) -> str:
    """How long the demo took, stage by stage, and how far behind its plan it ran."""
    counts = result.counts
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.timings.items())
    total = sum(result.timings.values())
    latest = ""
    if counts.latest is not None:
        action, planned = counts.latest
        latest = f", at worst: {action.split()[0]} planned {planned.astimezone(LOCAL):%d %b %H:%M}"
    return (
        f"Took {total:.0f} s ({stages}).\n"
        f"The simulation ran at most {counts.worst_lag_hours:.1f} simulated hours behind its "
        f"plan ({counts.lag_hours(0.95):.1f} h for 95 % of its {len(counts.lags)} actions, "
        f"{counts.lag_hours(0.5):.1f} h for half of them{latest}; at "
        f"{result.options.speed:,.0f}x one real second is {result.options.speed / 3600:.0f} "
        "simulated hours)."
    )


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
    # `ketenbus demo` started the stack (if it was not running) before it called us.
    before_us = seconds_since_start()
    places = ", ".join(f"{o} {n}" for o, n in caseloads(options.clients).items())
    print(
        f"\nKetenbus: a year in the chain. {options.clients} residents, three welfare "
        "organisations, two GP practices, a municipality with early-warning signals and a "
        f"debt-counselling partner. Caseloads (trajectories at once): {places}.\n",
        flush=True,
    )
    restarting = time.monotonic()
    # Services start about as fast as the stack did: on a busy machine that is slower.
    boot = min(max(BOOT_SECONDS, before_us or 0.0), 60.0)
    anchor = put_on_clock(stack, options, sys.stdout, boot)
    # Until the year begins at the clock's anchor (or at once, when restarting took longer).
    on_clock = time.monotonic() - restarting + max(anchor - time.time(), 0.0)
    result = asyncio.run(play_year(stack, options, anchor))
    result.timings = {
        **({"starting the stack": before_us} if before_us is not None else {}),
        "the services on the simulation's clock": on_clock,
        **result.timings,
    }
    print_report(result, stack)
    return result
