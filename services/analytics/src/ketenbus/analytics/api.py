"""What managers ask analytics: their own figures (JSON or CSV), the benchmark, the business
case, and the dashboard page. An organisation sees its own figures and the benchmark's
aggregates, never another organisation's figures."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, fields
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ketenbus.analytics import benchmark, labels, programme, sector, signals, views
from ketenbus.analytics.bootstrap import AnalyticsDependencies
from ketenbus.analytics.business_case import Assumptions, business_case
from ketenbus.analytics.dashboard import render_dashboard
from ketenbus.analytics.measures import (
    BENCHMARK_DIMENSIONS,
    DIMENSIONS,
    FIELDS,
    MixRow,
    figures,
    referral_mix,
)
from ketenbus.analytics.periods import PeriodKind, is_over, kind_of, overlap
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.analytics.store import AnalyticsTransaction
from ketenbus.contracts.events import KpiSnapshotPublishedV2
from ketenbus.contracts.events.analytics import Period
from ketenbus.contracts.values import Language
from ketenbus.kit.auth import Caller, requires
from ketenbus.kit.errors import DomainError
from ketenbus.kit.uow import UnitOfWork
from ketenbus.kit.web import service_dependencies

router = APIRouter(tags=["analytics"])

Manager = Annotated[Caller, Depends(requires("analytics:read"))]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]


Deps = Annotated[AnalyticsDependencies, Depends(service_dependencies)]


async def _uow(deps: Deps) -> UnitOfWork[AnalyticsTransaction]:
    return deps.uow


async def _settings(deps: Deps) -> AnalyticsSettings:
    return deps.settings


Uow = Annotated[UnitOfWork[AnalyticsTransaction], Depends(_uow)]
Settings = Annotated[AnalyticsSettings, Depends(_settings)]


async def _language(
    request: Request,
    settings: Settings,
    lang: Annotated[
        Language | None,
        Query(description="nl or en; else ANALYTICS_LANGUAGE, else Accept-Language, else nl"),
    ] = None,
) -> Language:
    return labels.choose(lang, settings.analytics_language, request.headers.get("accept-language"))


Lang = Annotated[Language, Depends(_language)]
CsvHeader = Annotated[
    Literal["labels", "keys"],
    Query(description="CSV header: the columns' labels in the chosen language, or their keys"),
]


class NoPseudonymKey(DomainError):
    status_code = 409


class NotYourSnapshot(DomainError):
    status_code = 403


class OverlappingPeriod(DomainError):
    status_code = 409  # the request is fine; what was published before stands in its way


class ReplacementUnderAnotherLabel(DomainError):
    status_code = 409


class NotAWholeQuarterOrYear(DomainError):
    status_code = 422


class PeriodNotOver(DomainError):
    status_code = 409  # the same request is fine once the period has ended


class UnknownDimension(DomainError):
    status_code = 422  # the request itself is wrong, not the state of anything


def _by(by: str) -> list[str]:
    chosen = [part.strip() for part in by.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(DIMENSIONS))
    if unknown:
        raise UnknownDimension(f"cannot group by {unknown}; choose from {', '.join(DIMENSIONS)}")
    return chosen


def _csv(
    rows: list[dict[str, Any]],
    columns: tuple[str, ...],
    name: str,
    language: Language,
    header: Literal["labels", "keys"],
) -> Response:
    """Values as the machine keys and numbers they are; the header row in words (the default,
    for whoever opens the file) or as the columns' keys (for a program reading it)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    if header == "keys":
        writer.writeheader()
    else:
        writer.writerow(labels.column_labels(columns, language))
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"',
            "Content-Language": language,
            "Vary": "Accept-Language",
        },
    )


@router.get("/v1/figures")
async def steering_figures(
    caller: Manager,
    uow: Uow,
    period: Annotated[PeriodKind, Query(description="month, quarter, year or all")] = (
        PeriodKind.QUARTER
    ),
    by: Annotated[
        str, Query(description="comma-separated: funder, work_type, topic, online_dossier")
    ] = "",
    format: Format = "json",
    language: Lang = labels.DEFAULT,
    header: CsvHeader = "labels",
) -> Any:
    """Every steering figure of your organisation per period (and per the dimensions asked),
    with the figures' labels in the language asked for (`labels`, by key)."""
    dimensions = _by(by)
    async with uow.reading() as tx:
        facts = await tx.facts.facts(caller.organisation_id)
    rows = [cell.row() for cell in figures(facts, period, dimensions)]
    if format == "csv":
        return _csv(rows, FIELDS, f"figures-{caller.organisation_id}-{period}", language, header)
    return {
        "organisation": caller.organisation_id,
        "period": period,
        "by": dimensions,
        "cells": rows,
        "language": language,
        "labels": labels.column_labels(FIELDS, language),
    }


class UnknownPeriod(DomainError):
    status_code = 422


SectorFormat = Annotated[
    Literal["json", "csv", "text"],
    Query(description="json (default), csv, or text (the table as a terminal prints it)"),
]


@router.get("/v1/sector-table")
async def the_sector_table(
    caller: Manager,
    uow: Uow,
    period: Annotated[
        str,
        Query(
            description="month, quarter, year or all (every such period), or one period: "
            "2025, 2025-Q3, 2025-07"
        ),
    ] = PeriodKind.YEAR,
    format: SectorFormat = "json",
    language: Lang = labels.DEFAULT,
    header: CsvHeader = "labels",
) -> Any:
    """The sector's own figures table of your organisation: a row per location x work type,
    the "of which material problems" row under general social work, closed cases with and
    without the online dossier, and the total row."""
    if period in set(PeriodKind):
        kind, only = PeriodKind(period), None
    elif re.fullmatch(r"[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?", period):
        kind, only = kind_of(period), period
    else:
        raise UnknownPeriod(f"period {period!r}: month, quarter, year, all, 2025, 2025-Q3, 2025-07")
    async with uow.reading() as tx:
        facts = await tx.facts.facts(caller.organisation_id)
    rows = sector.rows_as_dicts(sector.sector_table(facts, kind, only))
    if format == "csv":
        name = f"sector-table-{caller.organisation_id}-{period}"
        return _csv(rows, sector.COLUMNS, name, language, header)
    if format == "text":
        return PlainTextResponse(
            sector.as_text(rows, language) + "\n",
            headers={"Content-Language": language, "Vary": "Accept-Language"},
        )
    return {
        "organisation": caller.organisation_id,
        "period": period,
        "rows": rows,
        "language": language,
        "labels": labels.column_labels(sector.COLUMNS, language),
        "values": sector.value_labels(rows, language),
    }


@router.get("/v1/referral-mix")
async def referral_sources_and_topics(
    caller: Manager,
    uow: Uow,
    period: PeriodKind = PeriodKind.YEAR,
    format: Format = "json",
    language: Lang = labels.DEFAULT,
    header: CsvHeader = "labels",
) -> Any:
    """Where referrals come from and what they are about, per postcode area: for funders."""
    async with uow.reading() as tx:
        facts = await tx.facts.facts(caller.organisation_id)
    rows = [asdict(row) for row in referral_mix(facts, period)]
    columns = tuple(f.name for f in fields(MixRow))
    if format == "csv":
        name = f"referral-mix-{caller.organisation_id}-{period}"
        return _csv(rows, columns, name, language, header)
    return {
        "organisation": caller.organisation_id,
        "period": period,
        "rows": rows,
        "language": language,
        "labels": labels.column_labels(columns, language),
    }


@router.get("/v1/signal-figures")
async def early_warning_figures(
    caller: Manager,
    uow: Uow,
    period: PeriodKind = PeriodKind.QUARTER,
    format: Format = "json",
    language: Lang = labels.DEFAULT,
    header: CsvHeader = "labels",
) -> Any:
    """The early-warning signals your organisation received per period, and what followed from
    each: residents reached, help accepted or declined, signals not reached out to within the
    window, and the mean days from a signal to the first outreach attempt."""
    async with uow.reading() as tx:
        facts = await tx.facts.facts(caller.organisation_id)
    rows = [row.as_dict() for row in signals.signal_figures(facts, period)]
    if format == "csv":
        name = f"signal-figures-{caller.organisation_id}-{period}"
        return _csv(rows, signals.COLUMNS, name, language, header)
    return {
        "organisation": caller.organisation_id,
        "period": period,
        "rows": rows,
        "language": language,
        "labels": labels.column_labels(signals.COLUMNS, language),
    }


@router.get("/v1/business-case")
async def the_business_case(
    caller: Manager,
    uow: Uow,
    assumptions: Annotated[Assumptions, Depends()],
    measured: Annotated[bool, Query(description="use your measured hours where they exist")] = True,
) -> dict[str, Any]:
    """Savings against costs per year, the cumulative balance and the break-even year."""
    hours = None
    if measured:
        async with uow.reading() as tx:
            facts = await tx.facts.facts(caller.organisation_id)
        year = views.latest_year(facts)
        hours = views.measured_hours(facts, year) if year else None
    return business_case(assumptions, hours).as_dict()


@router.get("/v1/business-case/programme")
async def the_published_programme(caller: Manager) -> dict[str, Any]:
    """The business case as the sector calculates it for a programme, with the published
    example's parameters: per year the four savings components of every variant, and per cost
    scenario the costs, balance, cumulative balance and break-even year. POST your own
    parameters (the same shape as `parameters` in this answer) to the same route."""
    return programme.calculate(programme.published_example())


@router.post("/v1/business-case/programme")
async def a_programme(body: programme.Programme, caller: Manager) -> dict[str, Any]:
    """The business case of your own programme: its variants, sessions per year, savings
    parameters and cost scenarios (see GET for the published example)."""
    return programme.calculate(body)


def _own_labels(caller: Caller, settings: AnalyticsSettings) -> set[str]:
    labels = {caller.organisation_id}
    if settings.benchmark_pseudonym_key is not None:
        key = settings.benchmark_pseudonym_key.get_secret_value().encode()
        labels.add(benchmark.pseudonym(caller.organisation_id, key))
    return labels


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: Period = Field(description="a whole calendar year or quarter: 2025 or 2025-Q3")
    pseudonymise: bool = Field(default=False, description="share under a pseudonym")


async def _publishing(
    tx: AnalyticsTransaction, organisation: str, period: str, label: str
) -> str | None:
    """Whether `organisation` may publish a snapshot for `period` under `label`; the id of
    the snapshot it replaces, if any. Periods of one organisation are the same or disjoint:
    a year beside one of its quarters would give away, by subtraction, a cell suppressed in
    one of them. A replacement keeps the label: a pseudonym replacing a named snapshot would
    link the two on the topic. Only a period that has ended: a snapshot of a running
    quarter and its later replacement would both stay on the topic, and a cell suppressed in
    one could follow by subtraction from the other."""
    if kind_of(period) not in (PeriodKind.QUARTER, PeriodKind.YEAR):
        raise NotAWholeQuarterOrYear(
            f"a benchmark snapshot covers a whole calendar quarter or year (2025-Q3, 2025), "
            f"not {period!r}"
        )
    if not is_over(period, tx.clock.now()):
        raise PeriodNotOver(
            f"{period} has not ended yet: a benchmark snapshot covers a quarter or year that "
            "is over (publish it once it has ended)"
        )
    published = await tx.facts.publications(organisation)
    overlapping = sorted(p for p in published if overlap(p, period))
    if overlapping:
        raise OverlappingPeriod(
            f"{organisation} has published a snapshot for {', '.join(overlapping)}, which "
            f"overlaps {period}: publish only periods that do not overlap (the same period "
            "again replaces its snapshot)"
        )
    previous = published.get(period)
    if previous is None:
        return None
    if previous["label"] != label:
        raise ReplacementUnderAnotherLabel(
            f"the snapshot for {period} was published under another label; its replacement "
            "keeps that label (pseudonymised or not as before)"
        )
    return previous["snapshot_id"]


@router.post("/v1/benchmark/snapshots", status_code=status.HTTP_201_CREATED)
async def publish_snapshot(
    body: SnapshotRequest, caller: Manager, uow: Uow, settings: Settings
) -> dict[str, Any]:
    """Share your organisation's aggregates for a whole calendar quarter or year that has
    ended (409 for one that has not) with the sector: a row per work type, a column with and
    without the online dossier; cells of fewer than ten closed cases go without figures, and
    so do the cells that would give them away by subtraction from the totals. One snapshot
    per period: publishing the same period again replaces it (under the same label); a period
    overlapping one you published is refused."""
    key = settings.benchmark_pseudonym_key
    if body.pseudonymise and key is None:
        raise NoPseudonymKey("no pseudonym key is configured (BENCHMARK_PSEUDONYM_KEY)")
    secret = key.get_secret_value().encode() if key else b""
    organisation = caller.organisation_id
    label = benchmark.pseudonym(organisation, secret) if body.pseudonymise else organisation
    async with uow.command() as tx:
        replaces = await _publishing(tx, organisation, body.period, label)
        facts = await tx.facts.facts(organisation)
        kind = kind_of(body.period)
        cells = [
            c for c in figures(facts, kind, by=BENCHMARK_DIMENSIONS) if c.key.period == body.period
        ]
        published = benchmark.snapshot(
            organisation,
            body.period,
            cells,
            at=tx.clock.now(),
            pseudonymise=body.pseudonymise,
            key=secret,
            replaces=replaces,
        )
        await tx.facts.record_publication(organisation, body.period, published.snapshot_id, label)
        tx.publish(published)
    return published.model_dump(mode="json")


@router.post("/v1/benchmark/imports", status_code=status.HTTP_202_ACCEPTED)
async def import_snapshot(
    body: KpiSnapshotPublishedV2, caller: Manager, uow: Uow, settings: Settings, request: Request
) -> dict[str, str]:
    """Import a snapshot another organisation handed over (one outside the chain, say): it
    goes on the benchmark topic, so every organisation can compare with it, and a rebuild
    keeps it. An organisation of the chain publishes its own snapshots (POST
    /v1/benchmark/snapshots): no one imports figures in its name, nor over one it published.
    The rules of publishing hold for imports too: a whole quarter or year that has ended, no
    period overlapping one imported before for that organisation, the same period replaces."""
    chain = request.app.state.keyring.organisations()
    chain_labels = set(chain)
    if settings.benchmark_pseudonym_key is not None:
        key = settings.benchmark_pseudonym_key.get_secret_value().encode()
        chain_labels |= {benchmark.pseudonym(organisation, key) for organisation in chain}
    if body.organisation in chain_labels:
        raise NotYourSnapshot(
            f"{body.organisation} is an organisation of the chain: it publishes its own "
            "snapshots; only snapshots of organisations outside the chain are imported"
        )
    async with uow.command() as tx:
        if await tx.facts.snapshot_known(body.snapshot_id):
            raise DomainError(f"snapshot {body.snapshot_id} is known already; use a new id")
        label = body.organisation
        replaces = await _publishing(tx, label, body.period, label)
        await tx.facts.record_publication(label, body.period, body.snapshot_id, label)
        tx.publish(body.model_copy(update={"replaces": replaces}))
    return {"snapshot_id": body.snapshot_id, "status": "accepted"}


@router.get("/v1/benchmark")
async def compare_with_the_sector(
    caller: Manager, uow: Uow, settings: Settings, period: Period, language: Lang = labels.DEFAULT
) -> dict[str, Any]:
    """Your latest snapshot for the period next to every other organisation's."""
    async with uow.reading() as tx:
        snapshots = await tx.facts.snapshots(period)
    compared = views.compare(_own_labels(caller, settings), snapshots, period)
    return {**compared, "labels": labels.column_labels(compared["figures"], language)}


@router.get("/v1/dashboard-data")
async def dashboard_data(caller: Manager, uow: Uow, settings: Settings) -> dict[str, Any]:
    """Everything the dashboard page shows, in one answer."""
    async with uow.reading() as tx:
        facts = await tx.facts.facts(caller.organisation_id)
        snapshots = await tx.facts.snapshots()
    return views.dashboard(caller.organisation_id, facts, snapshots, _own_labels(caller, settings))


def _page(html: str, language: Language) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Language": language, "Vary": "Accept-Language"})


@router.get("/v1/dashboard-report", response_class=HTMLResponse)
async def dashboard_report(
    caller: Manager, uow: Uow, settings: Settings, language: Lang = labels.DEFAULT
) -> HTMLResponse:
    """The dashboard as one file with your figures inside: to keep, mail or open offline."""
    return _page(render_dashboard(await dashboard_data(caller, uow, settings), language), language)


@router.get("/dashboard", response_class=HTMLResponse, tags=["dashboard"])
async def dashboard_page(language: Lang = labels.DEFAULT) -> HTMLResponse:
    """The dashboard, in Dutch unless asked otherwise (`?lang=en`, `ANALYTICS_LANGUAGE`,
    `Accept-Language`). It asks for your API key (or takes it from `#key=...` in the address,
    which never reaches the server) and loads your figures with it; it needs nothing from
    outside this service."""
    return _page(render_dashboard(None, language), language)
