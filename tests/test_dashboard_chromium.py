"""The dashboard in a real browser, in Dutch and in English: headless Chromium renders it from
analytics, every chart draws its data, no two labels of a chart overlap (measured from the
boxes the browser rendered), the page says its language, a screenshot of each is kept, and
the page needs nothing from outside the machine."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from ketenbus.analytics.business_case import Assumptions, business_case
from ketenbus.analytics.dashboard import render_dashboard
from ketenbus.contracts.envelope import Event, wrap
from ketenbus.contracts.events import (
    AppointmentAttended,
    AppointmentMissed,
    AppointmentScheduled,
    ContactRegistered,
    KpiCell,
    KpiSnapshotPublished,
    ModuleAbandoned,
    ModuleCompleted,
    ModuleStarted,
    ReferralReceived,
    TrajectoryClosed,
    TrajectoryOpened,
    Urgency,
)
from ketenbus.contracts.values import new_id
from ketenbus.devstack.kafka_access import KafkaAccess

from .browser import CHROMIUM, Browser

pytestmark = [pytest.mark.stack, pytest.mark.chain]

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
NL = ZoneInfo("Europe/Amsterdam")
ORG = "welzijn-utrecht"


def a_year_of_events(cases: int = 60, seed: int = 11) -> list[Event]:
    """Cases over 2025 with contacts, appointments and modules: enough for every chart."""
    rng = random.Random(seed)
    events: list[Event] = []
    for _ in range(cases):
        referred = datetime(2025, 1, 2, 9, tzinfo=NL) + timedelta(days=rng.uniform(0, 300))
        client, trajectory, referral = new_id("cl"), new_id("trj"), new_id("ref")
        postcode = rng.choice(["3511", "3521", "3531", "3603"])
        topic = rng.choice(["debts_material", "psychosocial", "loneliness"])
        referrer = rng.choice(["gp", "self", "early_warning", "municipality"])
        events.append(
            ReferralReceived(
                referral_id=referral,
                client_ref=client,
                organisation_id=ORG,
                municipality="Utrecht",
                postcode_area=postcode,
                referrer_type=referrer,
                referrer_organisation_id="huisarts-de-linde",
                topic=topic,
                urgency=Urgency(),
                consent_id=new_id("cns"),
                received_at=referred,
            )
        )
        opened = referred + timedelta(hours=2)
        about = {"trajectory_id": trajectory, "client_ref": client, "organisation_id": ORG}
        events.append(
            TrajectoryOpened(
                **about,
                referral_id=referral,
                funder="Utrecht",
                work_type="general_social_work",
                referrer_type=referrer,
                topic=topic,
                postcode_area=postcode,
                crisis=False,
                referred_at=referred,
                opened_at=opened,
            )
        )
        blended = rng.random() < 0.5
        at = opened
        for number in range(4):
            at += timedelta(days=rng.uniform(5, 20))
            appointment = {**about, "appointment_id": new_id("apt")}
            kind = "intake" if number == 0 else "follow_up"
            events.append(
                AppointmentScheduled(
                    **appointment,
                    kind=kind,
                    starts_at=at,
                    duration_minutes=45,
                    modality="face_to_face",
                    worker_id="mw.utrecht",
                    scheduled_at=opened,
                )
            )
            if rng.random() < 0.25:
                events.append(
                    AppointmentMissed(
                        **appointment,
                        kind=kind,
                        starts_at=at,
                        worker_id="mw.utrecht",
                        registered_at=at,
                    )
                )
                continue
            events.append(
                AppointmentAttended(
                    **appointment,
                    kind=kind,
                    starts_at=at,
                    modality="face_to_face",
                    registered_at=at,
                )
            )
            events.append(
                ContactRegistered(
                    **about,
                    contact_id=new_id("con"),
                    channel="face_to_face",
                    minutes=rng.choice([45, 60, 75]),
                    occurred_at=at,
                )
            )
            if blended:
                sent = at + timedelta(days=2)
                for direction, when in (
                    ("client_to_worker", sent),
                    ("worker_to_client", sent + timedelta(hours=20)),
                ):
                    events.append(
                        ContactRegistered(
                            **about,
                            contact_id=new_id("con"),
                            channel="dossier_message",
                            direction=direction,
                            minutes=10,
                            online_dossier=True,
                            occurred_at=when,
                        )
                    )
        enrolment = {
            "enrolment_id": new_id("enr"),
            "client_ref": client,
            "organisation_id": ORG,
            "module_id": "grip-op-je-geld",
        }
        events.append(ModuleStarted(**enrolment, started_at=opened + timedelta(days=3)))
        if rng.random() < 0.6:
            events.append(ModuleCompleted(**enrolment, completed_at=at))
        else:
            events.append(
                ModuleAbandoned(
                    **enrolment,
                    steps_completed=rng.choice([1, 2]),
                    idle_since=opened,
                    abandoned_at=at,
                )
            )
        closed = at + timedelta(days=rng.uniform(5, 30))
        if closed < datetime(2025, 12, 31, tzinfo=NL):
            events.append(
                TrajectoryClosed(
                    **about,
                    referral_id=referral,
                    reason="goal_reached",
                    online_dossier_used=blended,
                    closed_at=closed,
                )
            )
    return events


def another_organisations_snapshot() -> KpiSnapshotPublished:
    cell = KpiCell(
        funder="Amersfoort",
        work_type="general_social_work",
        online_dossier_used=True,
        period="2025",
        closed_cases=42,
        suppressed=False,
        minutes_per_case=610.0,
        lead_time_days=121.5,
        no_show_rate_intake=0.31,
        no_show_rate_follow_up=0.18,
        module_completion_rate=0.58,
        online_share_of_contacts=0.35,
    )
    return KpiSnapshotPublished(
        snapshot_id=new_id("kpi"),
        organisation="organisatie-3f2a1b7c",
        pseudonymised=True,
        period="2025",
        cells=(cell,),
        published_at=datetime(2026, 1, 15, tzinfo=NL),
    )


async def publish(kafka: KafkaAccess, events: list[Event]) -> None:
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        for event in events:
            envelope = wrap(event, source="test")
            await producer.send(
                event.destination().name, envelope.to_bytes(), key=envelope.subject.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


def requests_by_initiator(netlog: Path) -> dict[str, set[str]]:
    """Every request the browser started, from its own network log, by who asked for it: the
    page's origin for what the page loads, "not an origin" for navigations and the browser's
    own background calls (update and time checks)."""
    found: dict[str, set[str]] = {}
    text = netlog.read_text(encoding="utf-8", errors="replace").rstrip().rstrip(",")
    if not text.endswith("}"):
        text += "]}"  # a log cut short at exit: close it
    for event in json.loads(text).get("events", []):
        params = event.get("params") or {}
        if "url" in params and "initiator" in params:
            found.setdefault(params["initiator"], set()).add(params["url"])
    return found


# Await the page's own signal that every figure is drawn (or fail with what it said instead).
RENDERED = """new Promise((resolve, reject) => {
  const done = () => document.body && document.body.dataset.rendered === "yes";
  if (done()) return resolve(true);
  const watch = new MutationObserver(() => { if (done()) { watch.disconnect(); resolve(true); } });
  watch.observe(document.documentElement, {subtree: true, attributes: true});
  const problem = () => document.getElementById("problem").textContent;
  setTimeout(() => reject(new Error("not rendered: " + problem())), 30000);
})"""

# What the browser drew, chart by chart: the marks with their values, and the box the browser
# gave every label (ticks, units, values, markers), in CSS pixels of the page.
MEASURE = """(() => {
  const box = (n) => {
    const r = n.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  };
  return {
    lang: document.documentElement.lang,
    charts: [...document.querySelectorAll("figure.chart")].map((f) => ({
      id: f.dataset.chart, unit: f.dataset.unit,
      expected: Number(f.dataset.expected), drawn: Number(f.dataset.drawn),
      marks: [...f.querySelectorAll("svg .mark")].map((m) => Number(m.getAttribute("data-value"))),
      svg: box(f.querySelector("svg")),
      labels: [...f.querySelectorAll("svg text")].filter((n) => n.textContent.trim())
        .map((n) => ({text: n.textContent, kind: n.getAttribute("class"), box: box(n)})),
      markers: [...f.querySelectorAll(".marker-label")].map((n) => n.textContent),
    })),
    html: document.documentElement.outerHTML,
  };
})()"""


def overlaps(labels: list[dict]) -> list[tuple[str, str]]:
    """Pairs of labels whose rendered boxes share more than a hair (0.5 px) both ways."""
    found = []
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            (al, at, ar, ab), (bl, bt, br, bb) = a["box"], b["box"]
            if min(ar, br) - max(al, bl) > 0.5 and min(ab, bb) - max(at, bt) > 0.5:
                found.append((a["text"], b["text"]))
    return found


def outside(labels: list[dict], svg: list[float]) -> list[str]:
    left, top, right, bottom = svg
    return [
        label["text"]
        for label in labels
        if label["box"][0] < left - 1
        or label["box"][1] < top - 1
        or label["box"][2] > right + 1
        or label["box"][3] > bottom + 1
    ]


def look(browser: Browser, url: str, screenshot: Path | None = None) -> dict:
    browser.open(url, width=1400)
    browser.evaluate(RENDERED)
    seen = browser.evaluate(MEASURE)
    seen["exceptions"] = browser.exceptions()
    if screenshot is not None:
        screenshot.write_bytes(browser.screenshot())
    return seen


def dutch(value: float, decimals: int = 1) -> str:
    """A number as the Dutch write it, written here independently of the page's script."""
    whole, _, fraction = f"{abs(value):,.{decimals}f}".partition(".")
    fraction = fraction.rstrip("0")
    sign = "-" if value < 0 else ""
    return sign + whole.replace(",", ".") + ("," + fraction if fraction else "")


def english(value: float, decimals: int = 1) -> str:
    whole, _, fraction = f"{abs(value):,.{decimals}f}".partition(".")
    fraction = fraction.rstrip("0")
    return ("-" if value < 0 else "") + whole + ("." + fraction if fraction else "")


WORDS = {
    "nl": {
        "closed": "Afgesloten casussen",
        "march": ">mrt<",
        "costs": "€ 25.500",
        "mark": "terugverdiend",
    },
    "en": {"closed": "Closed cases", "march": ">Mar<", "costs": "€25,500", "mark": "break-even"},
}


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)
async def test_the_dashboard_draws_every_chart_offline_in_chromium(chain, tmp_path):
    stack = chain(["analytics"], isolated=True, timeout=90)
    token = stack.api_token(ORG, "manager")
    events = a_year_of_events()
    await publish(stack.kafka, [*events, another_organisations_snapshot()])
    closed = sum(isinstance(e, TrajectoryClosed) for e in events)
    base = stack.service_url("analytics")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:

        async def caught_up(organisations: int) -> dict:
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                data = (await http.get("/v1/dashboard-data")).json()
                year = next((r for r in data["years"] if r["period"] == "2025"), {})
                benchmark = data["benchmark"] or {"organisations": []}
                if (
                    year.get("closed_cases") == closed
                    and len(benchmark["organisations"]) == organisations
                ):
                    return data
                assert asyncio.get_running_loop().time() < deadline, "analytics lags behind"
                await asyncio.sleep(0.3)

        await caught_up(organisations=1)  # the other organisation's snapshot
        published = await http.post(
            "/v1/benchmark/snapshots", json={"period": "2025", "pseudonymise": False}
        )
        assert published.status_code == 201, published.text
        data = await caught_up(organisations=2)

        # The language: `?lang=` beats Accept-Language, which beats nothing (Dutch).
        for asked, accept, expected in (
            ({}, None, "nl"),
            ({}, "en-GB,en;q=0.9", "en"),
            ({}, "de-DE,de;q=0.9,en;q=0.5", "en"),
            ({}, "en;q=0.5,nl;q=0.8", "nl"),
            ({"lang": "nl"}, "en-GB", "nl"),
            ({"lang": "en"}, "nl", "en"),
        ):
            sent = {"Accept-Language": accept} if accept else {}
            page = await http.get("/dashboard", params=asked, headers=sent)
            assert f'<html lang="{expected}">' in page.text, (asked, accept)
            assert page.headers["content-language"] == expected
        # The figures API: keys as they were, labels next to them in the language asked for.
        answer = (await http.get("/v1/figures", params={"period": "year"})).json()
        assert answer["language"] == "nl"
        assert answer["labels"]["closed_cases"] == "Afgesloten casussen"
        assert "closed_cases" in answer["cells"][0]
        in_english = (await http.get("/v1/figures", params={"period": "year", "lang": "en"})).json()
        assert in_english["labels"]["lead_time_days"] == "Lead time (days)"
        assert in_english["cells"] == answer["cells"]
        # The CSV: its header in words (Dutch unless asked), its values the same either way.
        csv_nl = (await http.get("/v1/figures", params={"format": "csv"})).text.splitlines()
        csv_en = await http.get(
            "/v1/figures", params={"format": "csv"}, headers={"Accept-Language": "en"}
        )
        csv_keys = await http.get("/v1/figures", params={"format": "csv", "header": "keys"})
        assert csv_nl[0].startswith("Organisatie,Periode,Financier,Werksoort,")
        assert csv_en.text.splitlines()[0].startswith("Organisation,Period,Funder,Work type,")
        assert csv_keys.text.splitlines()[0].startswith("organisation,period,funder,work_type,")
        assert csv_keys.text.splitlines()[1:] == csv_nl[1:] == csv_en.text.splitlines()[1:]
        mix = await http.get("/v1/referral-mix", params={"format": "csv"})
        assert mix.text.splitlines()[0] == (
            "Organisatie,Periode,Gemeente,Postcodegebied,Indeling,Waarde,Aanmeldingen"
        )

    # A report file whose business case breaks even (the model's own example), so that the
    # break-even year's marker is drawn and measured too.
    example = {**data, "business_case": business_case(Assumptions()).as_dict()}
    assert example["business_case"]["break_even_year"] == 3
    ARTIFACTS.mkdir(exist_ok=True)
    seen: dict[str, dict] = {}
    netlog = tmp_path / "netlog.json"

    def in_the_browser() -> None:
        with Browser(netlog=netlog) as browser:
            for language in ("nl", "en"):
                page = f"{base}/dashboard?lang={language}#key={token}"
                seen[language] = look(browser, page, ARTIFACTS / f"dashboard-{language}.png")
                report = tmp_path / f"report-{language}.html"
                report.write_text(render_dashboard(example, language), encoding="utf-8")
                seen[f"report-{language}"] = look(browser, report.as_uri())

    await asyncio.to_thread(in_the_browser)

    year = next(r for r in data["years"] if r["period"] == "2025")
    months = [r for r in data["months"] if r["period"].startswith("2025")]
    for name, page in seen.items():
        language = name.removeprefix("report-")
        assert page["exceptions"] == [], (name, page["exceptions"])
        assert page["lang"] == language, name
        charts = {c["id"]: c for c in page["charts"]}
        assert len(charts) >= 14, (name, sorted(charts))
        for chart in charts.values():
            where = (name, chart["id"])
            assert chart["expected"] > 0, f"{where} had no data to draw"
            assert chart["drawn"] == chart["expected"] == len(chart["marks"]), (where, chart)
            assert chart["unit"].startswith("unit."), where  # one unit on its value axis
            ticks = [label for label in chart["labels"] if label["kind"] == "tick"]
            assert len(ticks) >= 3, (where, chart["labels"])
            assert overlaps(chart["labels"]) == [], where
            assert outside(chart["labels"], chart["svg"]) == [], where
        # Hours and days never share an axis.
        assert charts["blended-hours"]["unit"] == "unit.hours"
        assert charts["blended-lead-time"]["unit"] == "unit.days"
        # Figures checked against the data the page loaded, by counting independently.
        assert charts["closed-cases"]["marks"] == [float(r["closed_cases"]) for r in months]
        assert sum(charts["closed-cases"]["marks"]) == closed
        # All twelve months are named: "jan" ... "dec" fit under the chart without thinning.
        month_labels = [
            label["text"] for label in charts["closed-cases"]["labels"] if label["kind"] == "tick"
        ]
        assert len([m for m in month_labels if not m[0].isdigit()]) == len(months), month_labels
        assert WORDS[language]["march"] in page["html"]
        assert len(charts["business-case"]["marks"]) == 3 * len(data["business_case"]["years"])
        assert len(charts["benchmark-lead-time"]["marks"]) == 2
        assert 121.5 in charts["benchmark-lead-time"]["marks"]
        assert f">{data['years'][0]['time_per_case']}<" in page["html"]  # the sector's h:mm
        assert WORDS[language]["closed"] in page["html"]
        assert WORDS[language]["costs"] in page["html"]  # year 1's costs in the table
        written = (dutch if language == "nl" else english)(year["lead_time_days"])
        assert f">{written}<" in page["html"], written
    # The break-even year is marked where there is one, and only there.
    for language in ("nl", "en"):
        assert seen[f"report-{language}"]["charts"][-1]["id"] == "business-case"
        markers = {c["id"]: c["markers"] for c in seen[f"report-{language}"]["charts"]}
        assert markers["business-case"] == [WORDS[language]["mark"]]
        live = {c["id"]: c["markers"] for c in seen[language]["charts"]}
        assert live["business-case"] == (
            [] if data["business_case"]["break_even_year"] is None else [WORDS[language]["mark"]]
        )

    # Everything the pages asked for came from this machine: the pages themselves
    # (navigations) and what they loaded, i.e. every request with the page's origin as its
    # initiator. The browser's own background calls (component updates, the time service)
    # are not the page's; the resolver rules make them fail like everything else outside.
    requests = requests_by_initiator(netlog)
    origin = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}"
    loaded_by_page = requests.get(origin, set())
    assert any(u.startswith(f"{base}/v1/dashboard-data") for u in loaded_by_page), requests
    navigations = requests.get("not an origin", set())
    assert any(u.startswith(f"{base}/dashboard?lang=en") for u in navigations), navigations
    outside_requests = {u for u in loaded_by_page if urlsplit(u).hostname != "127.0.0.1"}
    assert outside_requests == set(), outside_requests
    for language in ("nl", "en"):
        assert (ARTIFACTS / f"dashboard-{language}.png").stat().st_size > 20_000
