"""The early-warning figures (vroegsignalering): signals received, residents reached, help
accepted, and the days from a signal to the first outreach, per organisation and period.

A signal counts in the period it arrived in, with everything that followed from it (a cohort):
a signal of 30 March reached on 2 April counts as reached in March. "Residents reached" counts
signals whose resident was reached: the events carry no identity, so two signals about one
resident count twice (docs/signals.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ketenbus.analytics.facts import Facts, Signal
from ketenbus.analytics.periods import PeriodKind, period_of

DAY_SECONDS = 24 * 3600


@dataclass
class SignalRow:
    organisation: str
    period: str
    signals_received: int = 0
    residents_reached: int = 0
    help_accepted: int = 0
    help_declined: int = 0
    outreach_overdue: int = 0
    # Mean over the signals with any outreach, in days (one decimal); None without any.
    days_to_first_outreach: float | None = None
    _waits: list[float] = field(default_factory=list, repr=False)

    def count(self, signal: Signal) -> None:
        self.signals_received += 1
        self.residents_reached += signal.reached_at is not None
        self.help_accepted += signal.accepted_at is not None
        self.help_declined += signal.declined_at is not None
        self.outreach_overdue += signal.overdue_flagged_at is not None
        if signal.first_outreach_at is not None and signal.received_at is not None:
            wait = signal.first_outreach_at - signal.received_at
            self._waits.append(wait.total_seconds() / DAY_SECONDS)
            self.days_to_first_outreach = round(sum(self._waits) / len(self._waits), 1)

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS = tuple(f.name for f in fields(SignalRow) if not f.name.startswith("_"))


def signal_figures(facts: Facts, kind: PeriodKind) -> list[SignalRow]:
    rows: dict[tuple[str, str], SignalRow] = {}
    for signal in facts.signals:
        if signal.received_at is None:
            continue  # only later events of it were seen (a partial history)
        key = (signal.organisation_id, period_of(signal.received_at, kind))
        if key not in rows:
            rows[key] = SignalRow(*key)
        rows[key].count(signal)
    return [rows[key] for key in sorted(rows)]
