"""The demo year from start to report: put the services on the simulation's clock, play the
year, let analytics catch up, share benchmark snapshots, print the steering figures and write
the dashboards and CSV files under `<home>/reports/`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ketenbus.devstack.chain_client import ChainClient, ChainError, eventually
from ketenbus.devstack.report import (
    Reports,
    own_counts_table,
    sector_table,
    settled_totals,
    write_reports,
)
from ketenbus.devstack.simulation import LOCAL, Year, YearCounts, YearOptions
from ketenbus.devstack.stack import SERVICES, EmbeddedStack

# Seconds the services get to start again on the new clock before the year begins.
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

    @property
    def period(self) -> str:
        return f"{self.options.start.astimezone(LOCAL):%Y}"


def put_on_clock(stack: EmbeddedStack, options: YearOptions, out: TextIO | None) -> float:
    """Restart every service with the simulation's clock; returns the clock's anchor."""
    anchor = time.time() + BOOT_SECONDS
    environment = options.clock_environment(anchor)
    if out:
        print(
            f"putting the services on the simulation's clock: {options.days} days at "
            f"{options.speed:,.0f}x ...",
            file=out,
            flush=True,
        )
    for name in SERVICES:
        stack.restart_service(name, extra_env=environment)
    stack.wait_ready(SERVICES, timeout=120)
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
    chain = ChainClient(stack.urls(), stack.api_token)
    try:
        wait = anchor - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        counts = await Year(chain, options, anchor, out=out).run()
        organisations = sorted(counts.organisations)
        found, problems = await settled_totals(chain, counts)
        period = f"{options.start.astimezone(LOCAL):%Y}"
        snapshots = await share_snapshots(chain, organisations, period)
        year_figures = {}
        for organisation in organisations:
            answer = await chain.analytics(organisation, "/v1/figures", period="year")
            year_figures[organisation] = next(
                (c for c in answer["cells"] if c["period"] == period), {}
            )
        reports = await write_reports(chain, organisations, reports_dir or stack.home / "reports")
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
        f"{counts.declined} declined (outside the region), in {result.real_seconds:.0f} s "
        f"(the simulation ran at most {counts.worst_lag_hours:.1f} simulated hours behind plan)",
        file=out,
    )
    print(f"\nSteering figures {result.period} per organisation\n", file=out)
    print(sector_table(result.year_figures), file=out)
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
    urls = stack.urls()
    first = sorted(result.reports.dashboards)[0] if result.reports.dashboards else None
    print("\nWhere to look", file=out)
    if first:
        token = stack.api_token(first, "manager")
        print(
            f"  dashboard (live)    {urls['analytics']}/dashboard#key={token}\n"
            f"                      (the local demo key of {first}'s manager; every manager's "
            f"key is in {stack.home / 'api-tokens.json'})",
            file=out,
        )
    for _, path in sorted(result.reports.dashboards.items()):
        print(f"  dashboard (file)    {path}", file=out)
    print(f"  figures (CSV)       {result.reports.figures_csv}", file=out)
    print(f"  referral mix (CSV)  {result.reports.mix_csv}", file=out)
    print(
        f"  Prometheus metrics  {urls['analytics']}/metrics  (ketenbus_open_trajectories, "
        "ketenbus_waiting_list, ketenbus_no_show_rate)",
        file=out,
    )
    print(
        f"                      {urls['notifications']}/metrics  (ketenbus_reminders_due)", file=out
    )
    for service in SERVICES:
        print(f"  AsyncAPI {service:<11}{urls[service]}/asyncapi", file=out)
    print("\nThe stack keeps running; `uv run ketenbus down` (or `make down`) stops it.", file=out)


def run_demo_year(stack: EmbeddedStack, options: YearOptions | None = None) -> YearResult:
    options = options or YearOptions.from_environment()
    print(
        f"\nKetenbus: a year in the chain. {options.clients} residents, three welfare "
        "organisations, two GP practices, a municipality with early-warning signals and a "
        "debt-counselling partner.\n",
        flush=True,
    )
    anchor = put_on_clock(stack, options, sys.stdout)
    result = asyncio.run(play_year(stack, options, anchor))
    print_report(result, stack)
    return result
