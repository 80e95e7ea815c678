"""The end of the demo year: the steering figures per organisation in the sector's own table
form, the files a manager keeps (dashboard, CSV), and a check that analytics counted exactly
what the simulation did."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ketenbus.contracts.access import SERVICE_ACCESS
from ketenbus.contracts.values import Language
from ketenbus.devstack.chain_client import ChainClient, ChainError
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.narration import Narrator
from ketenbus.devstack.simulation import OrganisationCounts, YearCounts
from ketenbus.kit.broker import partitions_of
from ketenbus.kit.wording import DEFAULT, number, percent

# (figure, how to show it) in the order of the sector's tables. The words are analytics'
# labels (GET /v1/figures answers them next to the figures, in the language asked for), so
# the terminal says what the dashboard and the CSV say.
TABLE: tuple[tuple[str, str], ...] = (
    ("referrals_received", "int"),
    ("waitlisted", "int"),
    ("closed_cases", "int"),
    ("time_per_case", "raw"),
    ("registration_time_per_case", "raw"),
    ("dossier_time_per_case", "raw"),
    ("lead_time_days", "num"),
    ("chats_per_case", "num"),
    ("dossier_messages_per_case", "num"),
    ("homework_contacts_per_case", "num"),
    ("online_dossier_adoption", "pct"),
    ("no_show_rate_intake", "pct"),
    ("no_show_rate_follow_up", "pct"),
    ("module_completion_rate", "pct"),
    ("module_drop_out_rate", "pct"),
    ("waiting_time_days", "num"),
    ("response_time_hours", "num"),
    ("online_share_of_contacts", "pct"),
    ("online_share_of_time", "pct"),
    ("blended_hours_per_case", "num"),
    ("face_to_face_hours_per_case", "num"),
    ("blended_lead_time_days", "num"),
    ("face_to_face_lead_time_days", "num"),
    ("handoffs", "int"),
)
# "Of which" rows, indented under the row they split.
PART_OF_ABOVE = frozenset({"registration_time_per_case", "dossier_time_per_case"})
# The early-warning figures (GET /v1/signal-figures), in analytics' order and words.
SIGNAL_TABLE: tuple[tuple[str, str], ...] = (
    ("signals_received", "int"),
    ("residents_reached", "int"),
    ("help_accepted", "int"),
    ("help_declined", "int"),
    ("outreach_overdue", "int"),
    ("days_to_first_outreach", "num"),
)


def shown(value: Any, how: str, language: Language = DEFAULT) -> str:
    if value is None:
        return "–"
    if how == "pct":
        return percent(value, 1, language)
    if how == "num":
        return number(value, 1, language)
    if how == "int":
        return number(value, 0, language)
    return str(value)


def sector_table(
    rows: dict[str, dict[str, Any]],
    labels: dict[str, str] | None = None,
    language: Language = DEFAULT,
    table: tuple[tuple[str, str], ...] = TABLE,
) -> str:
    """One column per organisation, one line per figure of `table`, in the words of `labels`
    (the figures API's, by key; a figure without a label shows its key)."""
    organisations = sorted(rows)
    words = {
        name: ("  " if name in PART_OF_ABOVE else "") + (labels or {}).get(name, name)
        for name, _ in table
    }
    label_width = max(len(label) for label in words.values())
    widths = [max(len(o), 9) for o in organisations]
    lines = [
        " " * label_width
        + "".join(f"  {o:>{w}}" for o, w in zip(organisations, widths, strict=True))
    ]
    for name, how in table:
        cells = "".join(
            f"  {shown(rows[o].get(name), how, language):>{w}}"
            for o, w in zip(organisations, widths, strict=True)
        )
        lines.append(f"{words[name]:<{label_width}}{cells}")
    return "\n".join(lines)


# Simulation count -> the all-time figure of analytics that must equal it.
CHECKS: tuple[tuple[tuple[str, str], str], ...] = (
    (("referral", "received"), "referrals_received"),
    (("referral", "waitlisted"), "waitlisted"),
    (("trajectory", "closed"), "closed_cases"),
    (("intake", "attended"), "intake_attended"),
    (("intake", "missed"), "intake_missed"),
    (("follow_up", "attended"), "follow_up_attended"),
    (("follow_up", "missed"), "follow_up_missed"),
    (("module", "started"), "modules_started"),
    (("module", "completed"), "modules_completed"),
    (("hand_off", "requested"), "handoffs"),
    (("minutes", "registration"), "registration_minutes"),
    (("minutes", "dossier"), "dossier_minutes"),
    (("signal", "received"), "signals_received"),
    (("signal", "reached"), "residents_reached"),
    (("signal", "accepted"), "help_accepted"),
    (("signal", "declined"), "help_declined"),
)

Figures = dict[str, dict[str, Any]]


def inconsistencies(
    counts: YearCounts, totals: Figures, before: Figures | None = None
) -> list[str]:
    """Where analytics' all-time figures, less what it had counted before the year began
    (`before`: nothing on a fresh stack), differ from what the simulation did. Both cover
    every action of the run, whatever simulated moment it got, so how far the simulation ran
    behind its plan changes nothing here."""
    found = []
    for organisation, own in sorted(counts.organisations.items()):
        row, earlier = totals.get(organisation, {}), (before or {}).get(organisation, {})
        for ours, theirs in CHECKS:
            simulated = own[ours]
            counted = (row.get(theirs) or 0) - (earlier.get(theirs) or 0)
            if simulated != counted:
                found.append(
                    f"{organisation}: the simulation did {' '.join(ours)}={simulated}, "
                    f"analytics counts {theirs}={counted}"
                )
    return found


async def sector_tables(
    chain: ChainClient, organisations: Iterable[str], period: str, language: Language
) -> dict[str, str]:
    """Each organisation's sector table of `period` as analytics prints it for a terminal."""
    return {
        organisation: await chain.analytics(
            organisation, "/v1/sector-table", period=period, format="text", lang=language
        )
        for organisation in sorted(organisations)
    }


async def totals(chain: ChainClient, organisations: Iterable[str]) -> Figures:
    """Every organisation's figures over all time (one cell each), with its early-warning
    figures (signals received, reached, accepted, declined)."""
    found = {}
    for organisation in organisations:
        answer = await chain.analytics(organisation, "/v1/figures", period="all")
        signals = await chain.analytics(organisation, "/v1/signal-figures", period="all")
        found[organisation] = {
            **(signals["rows"][0] if signals["rows"] else {}),
            **(answer["cells"][0] if answer["cells"] else {}),
        }
    return found


# The topics analytics reads (contracts.access), as consumer group "analytics" (the service's
# name). Not every topic an event travels on: the contacts topic is not for analytics, and
# counting its cards as unread kept the demo waiting for a backlog that never shrinks.
ANALYTICS_GROUP = "analytics"
ANALYTICS_TOPICS = sorted(topic.name for topic in SERVICE_ACCESS[ANALYTICS_GROUP].reads)


class AnalyticsBacklog:
    """How many events analytics has not read yet: the end of each topic it reads less the
    offset its consumer group committed. Asks the broker only; joins no group."""

    def __init__(self, kafka: KafkaAccess) -> None:
        self.consumer = AIOKafkaConsumer(
            **kafka.client_options(), group_id=ANALYTICS_GROUP, enable_auto_commit=False
        )
        self.partitions: list[TopicPartition] = []

    async def __aenter__(self) -> AnalyticsBacklog:
        await self.consumer.start()
        self.partitions = await partitions_of(self.consumer, ANALYTICS_TOPICS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def events(self) -> int:
        ends = await self.consumer.end_offsets(self.partitions)
        behind = 0
        for partition, end in ends.items():
            behind += max(end - (await self.consumer.committed(partition) or 0), 0)
        return behind


async def settled_totals(
    chain: ChainClient,
    counts: YearCounts,
    before: Figures | None = None,
    *,
    idle_timeout: float = 60.0,
    limit: float = 900.0,
) -> tuple[Figures, list[str]]:
    """Analytics reads the events a moment after they happen, and on a busy machine it may
    be minutes behind: wait until it has counted everything the simulation did. Give up
    only when it stops making progress (its figures unchanged and its backlog not shrinking
    for `idle_timeout` seconds; 15 once it has read everything) or after `limit` seconds,
    and then say what differs."""
    started = time.monotonic()
    progressed, previous, least = started, None, None
    async with contextlib.AsyncExitStack() as stack:
        backlog = (
            await stack.enter_async_context(AnalyticsBacklog(chain.kafka)) if chain.kafka else None
        )
        while True:
            found = await totals(chain, counts.organisations)
            problems = inconsistencies(counts, found, before)
            if not problems:
                return found, problems
            behind = await backlog.events() if backlog else 0
            now = time.monotonic()
            if found != previous or (least is not None and behind < least):
                progressed = now
            previous, least = found, behind if least is None else min(least, behind)
            idle = now - progressed
            if idle > (idle_timeout if behind else 15.0) or now - started > limit:
                if behind:
                    problems.append(f"analytics had not read {behind} events yet")
                return found, problems
            await asyncio.sleep(1.0)


@dataclass
class Reports:
    directory: Path
    dashboards: dict[str, Path]
    figures_csv: Path
    mix_csv: Path
    # The sector's own table of the year, every organisation's rows (GET /v1/sector-table).
    sector_csv: Path | None = None


async def write_reports(
    chain: ChainClient,
    organisations: Iterable[str],
    directory: Path,
    language: Language = DEFAULT,
    period: str = "year",
) -> Reports:
    """Each organisation's dashboard, and the figures and referral mix of all in one CSV
    each, in `language` (the CSV's header; its values are the same in any language)."""
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the files
    dashboards: dict[str, Path] = {}
    figures_lines: list[str] = []
    mix_lines: list[str] = []
    sector_lines: list[str] = []
    for organisation in sorted(organisations):
        headers = {"Authorization": f"Bearer {chain.tokens(organisation, 'manager')}"}
        page = await chain.http.get(
            f"{chain.urls['analytics']}/v1/dashboard-report",
            headers=headers,
            params={"lang": language},
        )
        if page.status_code >= 400:
            raise ChainError(f"dashboard report for {organisation}: {page.status_code}")
        path = directory / f"dashboard-{organisation}.html"
        path.write_text(page.text, encoding="utf-8")
        dashboards[organisation] = path
        figures = await chain.analytics(
            organisation,
            "/v1/figures",
            period="month",
            by="funder,work_type,topic,online_dossier",
            format="csv",
            lang=language,
        )
        mix = await chain.analytics(
            organisation, "/v1/referral-mix", period="month", format="csv", lang=language
        )
        table = await chain.analytics(
            organisation, "/v1/sector-table", period=period, format="csv", lang=language
        )
        for lines, text in ((figures_lines, figures), (mix_lines, mix), (sector_lines, table)):
            header, *rows = text.splitlines()
            if not lines:
                lines.append(header)
            lines.extend(rows)
    figures_csv, mix_csv = directory / "figures.csv", directory / "referral-mix.csv"
    figures_csv.write_text("\n".join(figures_lines) + "\n", encoding="utf-8")
    mix_csv.write_text("\n".join(mix_lines) + "\n", encoding="utf-8")
    sector_csv = directory / "sector-table.csv"
    sector_csv.write_text("\n".join(sector_lines) + "\n", encoding="utf-8")
    return Reports(directory, dashboards, figures_csv, mix_csv, sector_csv)


# What the simulation did (counted by kind and outcome) and the narration's word for it, in
# the order a year goes: the creditors' signals and the outreach, the chain's own work, then
# what residents and the debt-counselling partner did (which of them happened and how often).
OWN_COUNTS: tuple[tuple[tuple[str, str], str], ...] = (
    (("signal", "received"), "signals"),
    (("outreach", "attempted"), "outreach"),
    (("signal", "reached"), "signals_reached"),
    (("signal", "accepted"), "signals_accepted"),
    (("signal", "declined"), "signals_declined"),
    (("referral", "received"), "referrals"),
    (("referral", "waitlisted"), "waitlisted"),
    (("trajectory", "opened"), "opened"),
    (("trajectory", "closed"), "closed"),
    (("intake", "missed"), "intake_missed"),
    (("follow_up", "missed"), "follow_up_missed"),
    (("module", "started"), "modules_started"),
    (("module", "completed"), "modules_completed"),
    (("questionnaire", "completed"), "questionnaires"),
    (("homework", "submitted"), "homework_submitted"),
    (("homework", "feedback"), "homework_feedback"),
    (("homework", "answered"), "homework_contacts"),
    (("hand_off", "requested"), "handoffs"),
    (("partner", "accepted"), "partner_accepted"),
    (("partner", "declined"), "partner_declined"),
    (("partner", "status"), "partner_status"),
    (("partner", "completed"), "partner_completed"),
    (("referral", "crisis"), "crises"),
    (("consent", "withdrawn"), "consents_withdrawn"),
    (("opt_out", "stop_reply"), "opted_out_stop"),
    (("opt_out", "link"), "opted_out_link"),
    (("erasure", "requested"), "erasures"),
)


def own_counts_table(counts: YearCounts, say: Narrator) -> str:
    """What the simulation itself did, per organisation, in the narration's words."""
    organisations = sorted(counts.organisations)
    words = {key: say(f"own.{name}") for key, name in OWN_COUNTS}
    first = max(len(word) for word in words.values()) + 2
    widths = [max(len(o), 9) + 2 for o in organisations]
    lines = [" " * first + "".join(f"{o:>{w}}" for o, w in zip(organisations, widths, strict=True))]
    for key, _ in OWN_COUNTS:
        values = "".join(
            f"{say.number(counts.organisations[o][key]):>{w}}"
            for o, w in zip(organisations, widths, strict=True)
        )
        lines.append(f"{words[key]:<{first}}{values}")
    return "\n".join(lines)


__all__ = [
    "OrganisationCounts",
    "Reports",
    "inconsistencies",
    "sector_table",
    "sector_tables",
    "settled_totals",
    "write_reports",
]
