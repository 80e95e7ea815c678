"""The dashboard in a real browser: headless Chromium renders it from analytics, every chart
draws its data, a screenshot is kept, and the page needs nothing from outside the machine."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaProducer

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

pytestmark = [pytest.mark.stack, pytest.mark.chain]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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


async def publish(bootstrap: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
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


class Charts(HTMLParser):
    """Each chart figure in the rendered DOM and the marks (bars) drawn inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, object]] = {}
        self.current: str | None = None
        self.depth = 0
        self.rendered = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body" and a.get("data-rendered") == "yes":
            self.rendered = True
        if tag == "figure" and a.get("class") == "chart":
            self.current, self.depth = a["data-chart"], 0
            self.charts[self.current] = {
                "expected": int(a["data-expected"] or -1),
                "drawn": int(a["data-drawn"] or -1),
                "marks": [],
            }
        if self.current is not None:
            self.depth += tag not in ("rect", "line", "title")
            if tag == "rect" and a.get("class") == "mark":
                self.charts[self.current]["marks"].append(float(a["data-value"]))  # type: ignore[union-attr]

    def handle_endtag(self, tag: str) -> None:
        if self.current is not None and tag not in ("rect", "line", "title"):
            self.depth -= 1
            if self.depth == 0:
                self.current = None


def chromium(*arguments: str, netlog: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM or "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            # Nothing but this machine can be reached: any other host does not resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=direct://",
            f"--log-net-log={netlog}",
            "--virtual-time-budget=15000",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


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


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)
async def test_the_dashboard_draws_every_chart_offline_in_chromium(chain, tmp_path):
    stack = chain(["analytics"], isolated=True, timeout=90)
    token = stack.api_token(ORG, "manager")
    events = a_year_of_events()
    await publish(stack.kafka_bootstrap, [*events, another_organisations_snapshot()])
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

    page = f"{base}/dashboard#key={token}"
    netlog = tmp_path / "netlog.json"
    dom = await asyncio.to_thread(chromium, "--dump-dom", page, netlog=netlog)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = Charts()
    parsed.feed(dom.stdout)

    assert parsed.rendered, "the page never finished rendering its figures"
    charts = parsed.charts
    assert len(charts) >= 12, sorted(charts)
    for name, chart in charts.items():
        assert chart["expected"] > 0, f"{name} had no data to draw"
        assert chart["drawn"] == chart["expected"] == len(chart["marks"]), (name, chart)
    # Figures checked against the data the page loaded, by counting independently.
    months = [r for r in data["months"] if r["period"].startswith("2025")]
    assert charts["closed-cases"]["marks"] == [float(r["closed_cases"]) for r in months]
    assert sum(charts["closed-cases"]["marks"]) == closed
    assert len(charts["business-case"]["marks"]) == 3 * len(data["business_case"]["years"])
    assert len(charts["benchmark-lead-time"]["marks"]) == 2
    assert 121.5 in charts["benchmark-lead-time"]["marks"]
    assert f">{data['years'][0]['time_per_case']}<" in dom.stdout  # the sector's h:mm

    # Everything the page asked for came from this machine: the page itself (a navigation)
    # and what it loaded, i.e. every request with the page's origin as its initiator. The
    # browser's own background calls (component updates, the time service) are not the
    # page's; the resolver rules make them fail like everything else outside.
    requests = requests_by_initiator(netlog)
    origin = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}"
    loaded_by_page = requests.get(origin, set())
    assert any(u.startswith(f"{base}/v1/dashboard-data") for u in loaded_by_page), requests
    navigations = requests.get("not an origin", set())
    assert any(u.startswith(f"{base}/dashboard") for u in navigations), navigations
    outside = {u for u in loaded_by_page if urlsplit(u).hostname != "127.0.0.1"}
    assert outside == set(), outside

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "dashboard.png"
    shot = await asyncio.to_thread(
        chromium,
        f"--screenshot={screenshot}",
        "--window-size=1400,3600",
        page,
        netlog=tmp_path / "netlog-screenshot.json",
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000
