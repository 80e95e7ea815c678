"""What the demo year says in the terminal, in Dutch unless `KETENBUS_LANGUAGE=en`: the
people who read the figures work in Dutch. Every sentence lives here once, in both
languages (tests/test_demo_report.py fails on a missing one); the figures' own words come from
analytics (GET /v1/figures answers them in the language asked for), so the narration and the
table around it speak the same language. The sector's words (afgesloten casussen, no-show,
werksoort) are the README glossary's."""

from __future__ import annotations

from typing import Any

from ketenbus.contracts.values import Language

# The setting is the devstack's, shared with the `ketenbus` command (language.py).
from ketenbus.devstack.language import chosen_language as chosen_language
from ketenbus.kit import wording
from ketenbus.kit.wording import both

NARRATION: wording.Table = {
    "intro": both(
        "Ketenbus: een jaar in de keten. {residents} inwoners, drie welzijnsorganisaties, twee "
        "huisartsenpraktijken, een gemeente, vier schuldeisers met signalen voor de "
        "vroegsignalering en een partner voor schuldhulpverlening. Caseload (trajecten "
        "tegelijk): {caseloads}.",
        "Ketenbus: a year in the chain. {residents} residents, three welfare organisations, two "
        "GP practices, a municipality, four creditors with early-warning signals and a "
        "debt-counselling partner. Caseloads (trajectories at once): {caseloads}.",
    ),
    "on_clock": both(
        "de services gaan op de klok van de simulatie: {days} dagen op {speed}x ...",
        "putting the services on the simulation's clock: {days} days at {speed}x ...",
    ),
    "year": both(
        "Het jaar {period}: {planned} inwoners gepland, {signals} signalen van schuldeisers, "
        "{referred} aangemeld in de regio, {declined} afgewezen (buiten de regio).",
        "The year {period}: {planned} residents planned, {signals} signals from creditors, "
        "{referred} referred into the region, {declined} declined (outside the region).",
    ),
    "steering_figures": both(
        "Stuurcijfers {period} per organisatie", "Steering figures {period} per organisation"
    ),
    "signal_figures": both(
        "Vroegsignalering {period} per organisatie",
        "Early-warning signals {period} per organisation",
    ),
    "sector_table": both(
        "De tabel van de sector {period}, {organisation}",
        "The sector's table {period}, {organisation}",
    ),
    "own_counts": both("Wat de simulatie zelf deed", "What the simulation itself did"),
    "agree": both(
        "De cijfers van analytics kloppen met de eigen tellingen van de simulatie "
        "(signalen, aanmeldingen, wachtlijst, afgesloten casussen, no-shows, modules, "
        "overdrachten, minuten).",
        "Analytics' figures agree with the simulation's own counts "
        "(signals, referrals, waiting list, closed cases, no-shows, modules, hand-offs, minutes).",
    ),
    "differ": both(
        "Analytics wijkt af van de eigen tellingen van de simulatie:",
        "Analytics differs from the simulation's own counts:",
    ),
    "not_simulated": both(
        "Nog niet in de keten, dus niet gesimuleerd: {features}",
        "Not in the chain yet, so not simulated: {features}",
    ),
    "refused": both(
        "{failed} handelingen geweigerd door de keten, bijvoorbeeld:",
        "{failed} actions were refused by the chain, e.g.:",
    ),
    "where_to_look": both("Waar te kijken", "Where to look"),
    "look.dashboard_live": both("dashboard (live)", "dashboard (live)"),
    "look.demo_key": both(
        "(de lokale demosleutel van de manager van {organisation}; de sleutel van elke manager "
        "staat in {file})",
        "(the local demo key of {organisation}'s manager; every manager's key is in {file})",
    ),
    "look.dashboard_file": both("dashboard (bestand)", "dashboard (file)"),
    "look.figures_csv": both("stuurcijfers (CSV)", "figures (CSV)"),
    "look.mix_csv": both("verwijzers en hulpvragen (CSV)", "referral mix (CSV)"),
    "look.sector_csv": both("de tabel van de sector (CSV)", "the sector's table (CSV)"),
    "look.metrics": both("Prometheus-metrics", "Prometheus metrics"),
    "look.asyncapi": both("AsyncAPI {service}", "AsyncAPI {service}"),
    "still_running": both(
        "De stack blijft draaien; `uv run ketenbus down` (of `make down`) stopt hem.",
        "The stack keeps running; `uv run ketenbus down` (or `make down`) stops it.",
    ),
    "real_pace": both(
        "de services gaan verder in echte tijd, vanaf waar het jaar nu is: terwijl je "
        "rondkijkt gaan er geen gesimuleerde jaren meer voorbij ...",
        "the services carry on in real time, from where the year has got to: no more "
        "simulated years pass while you look around ...",
    ),
    "took": both("Duurde {total} s ({stages}).", "Took {total} s ({stages})."),
    "stage.starting": both("de stack starten", "starting the stack"),
    "stage.on_clock": both(
        "de services op de klok van de simulatie", "the services on the simulation's clock"
    ),
    "stage.year": both("het jaar", "the year"),
    "stage.catching_up": both("analytics haalt in", "analytics catching up"),
    "stage.reports": both("benchmark en rapporten", "benchmark and reports"),
    "behind": both(
        "De simulatie liep hoogstens {worst} gesimuleerde uren achter op haar planning "
        "({most} u voor {share} van haar {actions} handelingen, {half} u voor de helft ervan"
        "{latest}; op {speed}x is één echte seconde {hours} gesimuleerde uren).",
        "The simulation ran at most {worst} simulated hours behind its plan "
        "({most} h for {share} of its {actions} actions, {half} h for half of them"
        "{latest}; at {speed}x one real second is {hours} simulated hours).",
    ),
    "at_worst": both(
        ", op zijn slechtst: {action} gepland op {moment}", ", at worst: {action} planned {moment}"
    ),
    # The rows of "What the simulation itself did", by the simulation's own counters.
    "own.signals": both("signalen van schuldeisers", "signals from creditors"),
    "own.outreach": both("  contactpogingen", "  outreach attempts"),
    "own.signals_reached": both("  inwoners bereikt", "  residents reached"),
    "own.signals_accepted": both("  hulp aanvaard (aanmelding)", "  help accepted (a referral)"),
    "own.signals_declined": both("  hulp afgewezen", "  help declined"),
    "own.referrals": both("aanmeldingen", "referrals"),
    "own.waitlisted": both("op de wachtlijst gezet", "put on the waiting list"),
    "own.opened": both("trajecten geopend", "trajectories opened"),
    "own.closed": both("afgesloten casussen", "closed cases"),
    "own.intake_missed": both("intakes gemist (no-show)", "intakes missed (no-show)"),
    "own.follow_up_missed": both("vervolgafspraken gemist", "follow-ups missed"),
    "own.modules_started": both("modules gestart", "modules started"),
    "own.modules_completed": both("modules afgerond", "modules completed"),
    "own.questionnaires": both("zelfscans ingevuld", "self-scans filled in"),
    "own.homework_submitted": both("huiswerk ingeleverd", "homework handed in"),
    "own.homework_feedback": both("huiswerk met feedback", "homework answered with feedback"),
    "own.homework_contacts": both("huiswerkcontacten", "homework contacts"),
    "own.handoffs": both("overdrachten aan schuldhulpverlening", "hand-offs to debt counselling"),
    "own.partner_accepted": both("  door de partner aangenomen", "  accepted by the partner"),
    "own.partner_declined": both("  door de partner afgewezen", "  declined by the partner"),
    "own.partner_status": both("  statusberichten van de partner", "  status reports"),
    "own.partner_completed": both("  door de partner afgerond", "  completed by the partner"),
    "own.crises": both("crises", "crises"),
    "own.consents_withdrawn": both("toestemmingen ingetrokken", "consents withdrawn"),
    "own.opted_out_stop": both("afgemeld met STOP (sms)", "opted out by STOP (SMS)"),
    "own.opted_out_link": both("afgemeld via de link (e-mail)", "opted out by the link (e-mail)"),
    "own.erasures": both("verzoeken om verwijdering", "erasure requests"),
    "progress": both(
        "[{bar}] {share:>4}  {day}  aanmeldingen {referred:4d}  lopend {open:4d}  "
        "afgesloten {closed:4d}  wachtlijst {waitlisted:3d}  achter {behind:>5} u",
        "[{bar}] {share:>4}  {day}  referrals {referred:4d}  open {open:4d}  "
        "closed {closed:4d}  waitlisted {waitlisted:3d}  behind {behind:>5} h",
    ),
}


class Narrator:
    """Says the demo's sentences and writes its numbers in one language."""

    def __init__(self, language: Language) -> None:
        self.language = language

    def __call__(self, key: str, **blanks: Any) -> str:
        return NARRATION[key][self.language].format(**blanks)

    def number(self, value: float, decimals: int = 0) -> str:
        return wording.number(value, decimals, self.language)

    def percent(self, share: float, decimals: int = 0) -> str:
        return wording.percent(share, decimals, self.language)
