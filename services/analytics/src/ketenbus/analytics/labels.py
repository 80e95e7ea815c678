"""Every word a manager, funder or operator reads in analytics: Dutch first, English as a
choice. One place, like the client templates: the dashboard page, the figures API's labels,
the CSV headers and the demo's report (which takes them from the figures API) all read
their words here, and a test holds every key to both languages.

The machine keys (`closed_cases`, `general_social_work`, `2025-Q3`) stay as they are in JSON
and CSV values; only their labels change with the language. The sector's own words
(werksoort, doorlooptijd, casus) are used as the sector uses them and explained once in the
README's glossary.
"""

from __future__ import annotations

from ketenbus.contracts.values import Language
from ketenbus.kit import wording
from ketenbus.kit.wording import DEFAULT, EN, NL, NUMBERS, number

# The mechanism is the kit's (the demo's narration uses it too); the words are analytics'.
__all__ = ["DEFAULT", "EN", "LABELS", "NL", "NUMBERS", "choose", "column_labels", "number", "words"]

_ = wording.both


# The steering figures and the columns of the figures and referral-mix CSVs, by their keys.
FIGURES: dict[str, dict[Language, str]] = {
    "organisation": _("Organisatie", "Organisation"),
    "period": _("Periode", "Period"),
    "funder": _("Financier", "Funder"),
    "work_type": _("Werksoort", "Work type"),
    "online_dossier_used": _("Online dossier gebruikt", "Online dossier used"),
    "closed_cases": _("Afgesloten casussen", "Closed cases"),
    "time_per_case": _("Tijd per casus (u:mm)", "Time per case (h:mm)"),
    "registration_time_per_case": _(
        "waarvan registratiesysteem (u:mm)", "of which registration (h:mm)"
    ),
    "dossier_time_per_case": _("waarvan online dossier (u:mm)", "of which online dossier (h:mm)"),
    "minutes_per_case": _("Minuten per casus", "Minutes per case"),
    "registration_minutes": _("Minuten registratiesysteem", "Registration minutes"),
    "dossier_minutes": _("Minuten online dossier", "Online dossier minutes"),
    "default_duration_share": _("Aandeel standaardduur", "Share of default durations"),
    "lead_time_days": _("Doorlooptijd (dagen)", "Lead time (days)"),
    "chats_per_case": _("Chatcontacten per casus", "Chats per case"),
    "dossier_messages_per_case": _("Berichten per casus", "Dossier messages per case"),
    "homework_contacts_per_case": _("Huiswerkcontacten per casus", "Homework contacts per case"),
    "online_dossier_adoption": _("Online dossier gebruikt", "Online dossier used"),
    "online_share_of_contacts": _("Online aandeel contacten", "Online share of contacts"),
    "online_share_of_time": _("Online aandeel tijd", "Online share of time"),
    "online_replacing_face_to_face_share": _(
        "Online in plaats van face-to-face", "Online replacing face-to-face"
    ),
    "blended_cases": _("Casussen blended", "Blended cases"),
    "blended_hours_per_case": _("Uren per casus, blended", "Hours per case, blended"),
    "blended_lead_time_days": _("Doorlooptijd blended (dagen)", "Lead time blended (days)"),
    "face_to_face_cases": _("Casussen alleen face-to-face", "Face-to-face only cases"),
    "face_to_face_hours_per_case": _(
        "Uren per casus, alleen face-to-face", "Hours per case, face-to-face only"
    ),
    "face_to_face_lead_time_days": _(
        "Doorlooptijd alleen face-to-face (dagen)", "Lead time face-to-face only (days)"
    ),
    "intake_attended": _("Intakes gehouden", "Intakes attended"),
    "intake_missed": _("Intakes gemist", "Intakes missed"),
    "no_show_rate_intake": _("No-show intake", "No-show intake"),
    "follow_up_attended": _("Vervolgafspraken gehouden", "Follow-ups attended"),
    "follow_up_missed": _("Vervolgafspraken gemist", "Follow-ups missed"),
    "no_show_rate_follow_up": _("No-show vervolgafspraak", "No-show follow-up"),
    "modules_started": _("Modules gestart", "Modules started"),
    "modules_completed": _("Modules afgerond", "Modules completed"),
    "modules_dropped_out": _("Modules afgehaakt na stap 1", "Modules dropped after step 1"),
    "module_completion_rate": _("Modules afgerond", "Modules completed"),
    "module_drop_out_rate": _("Afgehaakt na stap 1", "Dropped out after step 1"),
    "referrals_received": _("Aanmeldingen", "Referrals received"),
    "waitlisted": _("Op de wachtlijst gezet", "Put on the waiting list"),
    "first_contacts": _("Eerste contacten", "First contacts"),
    "waiting_time_days": _("Wachttijd tot eerste contact (dagen)", "Waiting time (days)"),
    "client_messages": _("Berichten van cliënten", "Messages from clients"),
    "messages_answered": _("Berichten beantwoord", "Messages answered"),
    "response_time_hours": _("Reactietijd op berichten (uren)", "Response to messages (hours)"),
    "answered_within_working_day_share": _(
        "Beantwoord binnen 1 werkdag", "Answered within 1 working day"
    ),
    "answered_within_48h_share": _("Beantwoord binnen 48 uur", "Answered within 48 hours"),
    "handoffs": _("Overdrachten aan schuldhulpverlening", "Hand-offs to debt counselling"),
    # The sector's table (sector.py): the grouping, then its two column groups; the words
    # before ": " are the group's heading in the terminal and on the dashboard.
    "topic": _("Hulpvraag", "Question topic"),
    "location": _("Locatie", "Location"),
    "of_which": _("Waarvan", "Of which"),
    "with_closed_cases": _("Met online dossier: casussen", "With online dossier: cases"),
    "with_registration_time": _(
        "Met online dossier: registratie (u:mm)", "With online dossier: registration (h:mm)"
    ),
    "with_dossier_time": _(
        "Met online dossier: online dossier (u:mm)", "With online dossier: online dossier (h:mm)"
    ),
    "with_total_time": _("Met online dossier: totaal (u:mm)", "With online dossier: total (h:mm)"),
    "with_time_per_case": _(
        "Met online dossier: per casus (u:mm)", "With online dossier: per case (h:mm)"
    ),
    "with_lead_time_days": _(
        "Met online dossier: doorlooptijd (dagen)", "With online dossier: lead time (days)"
    ),
    "with_chats": _("Met online dossier: chat", "With online dossier: chat"),
    "with_messages": _("Met online dossier: mail", "With online dossier: mail"),
    "with_homework_contacts": _("Met online dossier: huiswerk", "With online dossier: homework"),
    "without_closed_cases": _("Zonder online dossier: casussen", "Without online dossier: cases"),
    "without_registration_time": _(
        "Zonder online dossier: registratie (u:mm)", "Without online dossier: registration (h:mm)"
    ),
    "without_time_per_case": _(
        "Zonder online dossier: per casus (u:mm)", "Without online dossier: per case (h:mm)"
    ),
    "without_lead_time_days": _(
        "Zonder online dossier: doorlooptijd (dagen)", "Without online dossier: lead time (days)"
    ),
    # The early-warning figures (signals.py).
    "signals_received": _("Signalen ontvangen", "Signals received"),
    "residents_reached": _("Inwoners bereikt", "Residents reached"),
    "help_accepted": _("Hulp aanvaard", "Help accepted"),
    "help_declined": _("Hulp afgewezen", "Help declined"),
    "outreach_overdue": _("Niet op tijd benaderd", "Not reached out to in time"),
    "days_to_first_outreach": _("Dagen tot eerste contactpoging", "Days to first outreach attempt"),
    # The referral mix's own columns.
    "municipality": _("Gemeente", "Municipality"),
    "postcode_area": _("Postcodegebied", "Postcode area"),
    "dimension": _("Indeling", "Dimension"),
    "value": _("Waarde", "Value"),
    "referrals": _("Aanmeldingen", "Referrals"),
}

# Values of the dimensions, by "<dimension>.<key>".
VALUES: dict[str, dict[Language, str]] = {
    "work_type.general_social_work": _("Algemeen Maatschappelijk Werk", "General social work"),
    "work_type.school_social_work": _("Schoolmaatschappelijk werk", "School social work"),
    "work_type.online_help": _("Hulp Online", "Online help"),
    "work_type.material_debt": _("waarvan materiële problematiek", "of which material problems"),
    "referrer_type.gp": _("huisarts", "GP"),
    "referrer_type.municipality": _("gemeente", "municipality"),
    "referrer_type.early_warning": _("vroegsignalering", "early warning"),
    "referrer_type.school": _("school", "school"),
    "referrer_type.self": _("zelfmelding", "self-registration"),
    "referrer_type.network": _("netwerk", "network"),
    "referrer_type.outreach": _("outreach", "outreach"),
    "topic.debts_material": _("geldzaken en schulden", "money and debts"),
    "topic.psychosocial": _("psychosociaal", "psychosocial"),
    "topic.relationships": _("relaties", "relationships"),
    "topic.parenting": _("opvoeding", "parenting"),
    "topic.loneliness": _("eenzaamheid", "loneliness"),
    "topic.other": _("overig", "other"),
    "of_which.debts_material": _("waarvan materiële problematiek", "of which material problems"),
    "of_which.psychosocial": _("waarvan psychosociaal", "of which psychosocial"),
    "of_which.relationships": _("waarvan relaties", "of which relationships"),
    "of_which.parenting": _("waarvan opvoeding", "of which parenting"),
    "of_which.loneliness": _("waarvan eenzaamheid", "of which loneliness"),
    "of_which.other": _("waarvan overig", "of which other"),
    "value.total": _("Totaal", "Total"),
    "value.unknown": _("onbekend", "unknown"),
    "value.all": _("alle", "all"),
    "value.yes": _("ja", "yes"),
    "value.no": _("nee", "no"),
}

# Periods: months abbreviated so that twelve fit under a chart; {q} and {year} are filled in.
PERIODS: dict[str, dict[Language, str]] = {
    **{
        f"month.{number}": _(nl, en)
        for number, (nl, en) in enumerate(
            zip(
                (
                    "jan",
                    "feb",
                    "mrt",
                    "apr",
                    "mei",
                    "jun",
                    "jul",
                    "aug",
                    "sep",
                    "okt",
                    "nov",
                    "dec",
                ),
                (
                    "Jan",
                    "Feb",
                    "Mar",
                    "Apr",
                    "May",
                    "Jun",
                    "Jul",
                    "Aug",
                    "Sep",
                    "Oct",
                    "Nov",
                    "Dec",
                ),
                strict=True,
            ),
            start=1,
        )
    },
    "period.quarter": _("K{q} {year}", "Q{q} {year}"),
    "period.quarter_short": _("K{q}", "Q{q}"),
    "period.year_number": _("jaar {year}", "year {year}"),
}

# The dashboard page: headings, notes, chart titles, series and units.
PAGE: dict[str, dict[Language, str]] = {
    "page.title": _("Ketenbus stuurcijfers", "Ketenbus steering figures"),
    "page.heading": _("Stuurcijfers", "Steering figures"),
    "page.sign_in": _("Inloggen", "Sign in"),
    "page.key_prompt": _(
        "Plak de analytics-sleutel van uw organisatie.", "Paste your organisation's analytics key."
    ),
    "page.show": _("Toon de cijfers", "Show figures"),
    "page.key_invalid": _(
        "Deze sleutel geeft geen toegang tot analytics.", "This key is not valid for analytics."
    ),
    "page.load_failed": _(
        "De cijfers konden niet worden geladen ({status}).",
        "The figures could not be loaded ({status}).",
    ),
    "page.other_language": _("English", "Nederlands"),
    "page.at_a_glance": _("Dit jaar in één oogopslag", "This year at a glance"),
    "page.sector_table": _("Stuurcijfers per kwartaal", "Steering figures per quarter"),
    "page.sector_table_note": _(
        "Tijd per casus in uren:minuten, afgekapt op de hele minuut, zoals in de eigen tabellen "
        "van de sector. Een afgesloten casus telt in de periode waarin hij is afgesloten.",
        "Time per case is hours:minutes, truncated to the whole minute, as in the sector's own "
        "tables. Each closed case counts in the period it was closed.",
    ),
    "sector.with": _("Met online dossier", "With online dossier"),
    "sector.without": _("Zonder online dossier", "Without online dossier"),
    "sector.row": _("Locatie, werksoort", "Location, work type"),
    "sector.heading": _("De tabel van de sector, {period}", "The sector's table, {period}"),
    "sector.note": _(
        "Per locatie en werksoort, met daaronder het deel materiële problematiek. Tijden in "
        "uren:minuten, per casus afgekapt op de hele minuut; chat, mail en huiswerk zijn "
        "totalen over de casussen van de rij.",
        "Per location and work type, with the part about material problems under it. Times in "
        "hours:minutes, per case truncated to the whole minute; chat, mail and homework are "
        "totals over the row's cases.",
    ),
    "page.trends": _("Door het jaar heen", "Through the year"),
    "page.figure": _("Cijfer", "Figure"),
    "page.no_data": _("geen gegevens", "no data"),
    "chart.closed_cases": _("Afgesloten casussen per maand", "Closed cases per month"),
    "chart.time_per_case": _(
        "Uren per afgesloten casus: registratiesysteem en online dossier",
        "Hours per closed case: registration and online dossier",
    ),
    "chart.no_show": _("No-show per maand", "No-show rate per month"),
    "chart.modules": _(
        "Zelfhulpmodules per kwartaal van start: afgerond en afgehaakt",
        "Self-help modules started per quarter: completed and dropped out",
    ),
    "chart.online_share": _(
        "Online aandeel in contacten en in tijd", "Online share of contacts and of time"
    ),
    "chart.blended_hours": _(
        "Uren per casus: blended en alleen face-to-face",
        "Hours per case: blended and face-to-face only",
    ),
    "chart.blended_lead_time": _(
        "Doorlooptijd: blended en alleen face-to-face",
        "Lead time: blended and face-to-face only",
    ),
    "chart.blended_note": _(
        "Komt online contact bovenop face-to-face contact in plaats van het te vervangen, dan "
        "kosten blended casussen meer uren en meer dagen.",
        "When online contact is added on top of face-to-face contact instead of replacing it, "
        "blended cases take more hours and more days.",
    ),
    "chart.waiting": _(
        "Wachttijd tot het eerste contact per maand", "Waiting time to first contact per month"
    ),
    "chart.response": _(
        "Reactietijd op berichten van cliënten per kwartaal",
        "Response to clients' messages per quarter",
    ),
    "chart.response_note": _(
        "Normen in de rapporten van de sector: binnen één werkdag, binnen 48 uur.",
        "Targets in the sector's reports: within one working day, within 48 hours.",
    ),
    "chart.sources": _("Wie verwees", "Who referred"),
    "chart.topics": _("Waar de aanmeldingen over gingen", "What referrals were about"),
    "chart.areas": _("Aanmeldingen per postcodegebied", "Referrals per postcode area"),
    "chart.benchmark_lead_time": _("Doorlooptijd", "Lead time"),
    "chart.benchmark_no_show": _("No-show", "No-show"),
    "chart.business_case": _(
        "Besparing, kosten en cumulatief saldo per jaar",
        "Savings, costs and cumulative balance per year",
    ),
    "series.registration": _("registratiesysteem", "registration"),
    "series.online_dossier": _("online dossier", "online dossier"),
    "series.intake": _("intake", "intake"),
    "series.follow_up": _("vervolgafspraak", "follow-up"),
    "series.completed": _("afgerond", "completed"),
    "series.dropped_out": _("afgehaakt na stap 1", "dropped out after step 1"),
    "series.of_contacts": _("van de contacten", "of contacts"),
    "series.of_time": _("van de tijd", "of time"),
    "series.blended": _("blended", "blended"),
    "series.face_to_face": _("alleen face-to-face", "face-to-face only"),
    "series.savings": _("besparing", "savings"),
    "series.costs": _("kosten", "costs"),
    "series.cumulative": _("cumulatief saldo", "cumulative balance"),
    "unit.cases": _("casussen", "cases"),
    "unit.hours": _("uren", "hours"),
    "unit.days": _("dagen", "days"),
    "unit.percent": _("procent", "per cent"),
    "unit.euro": _("euro", "euros"),
    "unit.referrals": _("aanmeldingen", "referrals"),
    "bench.heading": _(
        "Benchmark: uw momentopname naast die van andere organisaties",
        "Benchmark: your snapshot next to other organisations'",
    ),
    "bench.note": _(
        "Alleen totalen; cellen met minder dan 10 afgesloten casussen blijven weg.",
        "Only aggregates; cells with fewer than 10 closed cases are left out.",
    ),
    "bench.none": _("Nog geen momentopnames gedeeld.", "No snapshots shared yet."),
    "bench.you": _("{name} (u)", "{name} (you)"),
    "bc.heading": _("Businesscase", "Business case"),
    "bc.measured": _(
        "Uren uit uw eigen registraties ({period}); {rate} per uur.",
        "Hours from your own registrations ({period}); {rate} an hour.",
    ),
    "bc.assumed": _(
        "Uren volgens de aannames van het model; {rate} per uur.",
        "Hours from the model's assumptions; {rate} an hour.",
    ),
    "bc.break_even": _("Terugverdiend in jaar {year}.", "Break-even in year {year}."),
    "bc.no_break_even": _(
        "Niet terugverdiend binnen {years} jaar.", "No break-even within {years} years."
    ),
    "bc.break_even_mark": _("terugverdiend", "break-even"),
}

LABELS: wording.Table = {**FIGURES, **VALUES, **PERIODS, **PAGE}


def words(language: Language, keys: wording.Table = LABELS) -> dict[str, str]:
    """Every label in one language, by key."""
    return wording.words(keys, language)


def column_labels(columns: tuple[str, ...], language: Language) -> dict[str, str]:
    """The labels of a CSV's or an answer's columns."""
    return {column: FIGURES[column][language] for column in columns}


def choose(
    asked: Language | None, setting: Language | None, accept_language: str | None
) -> Language:
    """The language of an answer: the one asked for (`?lang=`), else the service's setting
    (`ANALYTICS_LANGUAGE`), else the browser's preference (`Accept-Language`) where it names
    Dutch or English, else Dutch. An explicit choice beats a guess: a Dutch team leader on a
    laptop set up in English still gets Dutch when the organisation says so."""
    if asked is not None:
        return asked
    if setting is not None:
        return setting
    return preferred(accept_language) or DEFAULT


def preferred(accept_language: str | None) -> Language | None:
    """The supported language an `Accept-Language` header prefers most (`en-GB,en;q=0.8`)."""
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _eq, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary not in {language.value for language in Language} or quality <= 0:
            continue
        candidate = (quality, -position, Language(primary))
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None
