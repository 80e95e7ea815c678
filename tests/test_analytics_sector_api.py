"""GET /v1/sector-table answers the sector's table as JSON, CSV and text: the route on an
in-memory unit of work (no servers), with the hand-built year of test_analytics_sector_table."""

from __future__ import annotations

import contextlib
import csv
import io
from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from ketenbus.analytics.api import router
from ketenbus.analytics.facts import Facts
from ketenbus.kit.auth import Caller
from ketenbus.kit.web import _add_error_handlers

from .test_analytics_sector_table import ORG, a_year


class InMemoryFacts:
    def __init__(self, facts: Facts) -> None:
        self.known = facts

    async def facts(self, organisation: str) -> Facts:
        assert organisation == ORG
        return self.known


class InMemoryUow:
    def __init__(self, facts: Facts) -> None:
        self.tx = SimpleNamespace(facts=InMemoryFacts(facts))

    @contextlib.asynccontextmanager
    async def reading(self):
        yield self.tx


class OneKey:
    def identify(self, token: str) -> Caller | None:
        if token != "kb_manager":
            return None
        return Caller("k1", ORG, frozenset({"analytics:read"}), None)


def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    _add_error_handlers(app)  # as the kit's app factory does
    app.state.keyring = OneKey()
    app.state.runtime = SimpleNamespace(
        uow=InMemoryUow(a_year().facts()), settings=SimpleNamespace(analytics_language=None)
    )
    return TestClient(app, headers={"Authorization": "Bearer kb_manager"})


def test_json_rows_with_their_words():
    answer = client().get("/v1/sector-table", params={"period": "2025", "lang": "en"})
    assert answer.status_code == 200
    body = answer.json()
    rows = body["rows"]
    assert [(r["location"], r["of_which"]) for r in rows] == [
        ("Nieuwegein", "all"),
        ("Utrecht", "all"),
        ("Utrecht", "debts_material"),
        ("total", "all"),
    ]
    assert rows[2]["without_time_per_case"] == "2:00" and rows[3]["without_closed_cases"] == 4
    assert body["values"]["of_which.debts_material"] == "of which material problems"
    assert body["labels"]["with_time_per_case"] == "With online dossier: per case (h:mm)"


def test_every_year_unless_one_is_asked_for():
    rows = client().get("/v1/sector-table", params={"period": "year"}).json()["rows"]
    assert sorted({r["period"] for r in rows}) == ["2025", "2026"]


def test_csv_in_dutch_with_the_rows_of_the_json():
    answer = client().get("/v1/sector-table", params={"period": "2025", "format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    header, *lines = list(csv.reader(io.StringIO(answer.text)))
    assert header[:5] == ["Organisatie", "Periode", "Locatie", "Werksoort", "Waarvan"]
    assert "Zonder online dossier: per casus (u:mm)" in header
    material = lines[2]
    assert material[3:5] == ["general_social_work", "debts_material"]
    assert material[header.index("Met online dossier: mail")] == "2"
    assert material[header.index("Zonder online dossier: registratie (u:mm)")] == "4:01"


def test_text_as_the_terminal_prints_it():
    answer = client().get("/v1/sector-table", params={"period": "2025", "format": "text"})
    lines = answer.text.splitlines()
    assert lines[4].startswith("  waarvan materiële problematiek")
    assert lines[5].startswith("Totaal")


def test_an_unknown_period_is_refused_with_the_choices():
    answer = client().get("/v1/sector-table", params={"period": "last-year"})
    assert answer.status_code == 422 and "2025-Q3" in answer.text


def test_no_key_no_table():
    answer = client().get("/v1/sector-table", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401


def test_the_published_programme_and_your_own():
    example = client().get("/v1/business-case/programme").json()
    breaks = {s["name"]: s["break_even_year"] for s in example["scenarios"]}
    assert sorted(breaks.values()) == [2, 3, 3, 4]
    own = example["parameters"]
    own["scenarios"] = [{"name": "free", "costs": []}]
    answer = client().post("/v1/business-case/programme", json=own).json()
    assert answer["scenarios"][0]["years"][0]["cumulative_balance"] == 40_980
    assert answer["scenarios"][0]["break_even_year"] == 1
    own["online_efficiency"] = 1.5
    assert client().post("/v1/business-case/programme", json=own).status_code == 422


def test_csv_values_are_the_same_in_either_language_and_keep_the_decimal_point():
    """Only the header follows the language: the values stay machine values (see
    docs/analytics.md, "CSV: words in the header, machine values in the cells")."""
    asked = {"period": "year", "format": "csv"}
    dutch = list(csv.reader(io.StringIO(client().get("/v1/figures", params=asked).text)))
    english = client().get("/v1/figures", params={**asked, "lang": "en"}).text
    header, *rows = dutch
    assert header[0] == "Organisatie" and english.startswith("Organisation,")
    assert rows == list(csv.reader(io.StringIO(english)))[1:]
    lead_times = [row[header.index("Doorlooptijd (dagen)")] for row in rows]
    assert any("." in value for value in lead_times), lead_times
    assert all(float(value) >= 0 for value in lead_times if value)
