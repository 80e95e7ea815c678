"""Before and now: a run's figures next to those of the last run on the previous engines.

Until 2026-11 the embedded stack ran Tansu (a Kafka-compatible broker in Rust, memory
storage) and the Python SecantusDB; its last full run is kept in
benchmarks/results/2026-11-23-0328.json. Every figure of the same workload is set beside
this run's, with the ratio now ÷ before and which way is better.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEFORE_RESULTS = Path(__file__).resolve().parent / "results" / "2026-11-23-0328.json"
BEFORE_ENGINES = "Tansu + Python SecantusDB, 2026-11-23"
BEFORE_LABEL = f"before ({BEFORE_ENGINES})"
# The load stops rising at the first stage past these (benchmarks.load.Stage.exploded).
HELD_P99_MS = 5_000
HELD_SHARE = 0.01

HIGHER, LOWER = "higher", "lower"
# The CPU meters' names for the engines' processes, as the report and comparisons show them.
PROCESSES = {"mongo": "secantusd-rs", "kafka": "Kafka"}


@dataclass(frozen=True)
class Figure:
    value: float | None
    better: str  # HIGHER or LOWER
    digits: int = 0


@dataclass(frozen=True)
class Row:
    measure: str
    before: float | None
    now: float | None
    better: str  # HIGHER or LOWER
    digits: int = 0

    @property
    def ratio(self) -> float | None:
        if self.before is None or self.now is None or not self.before:
            return None
        return self.now / self.before


def load_before(path: Path = BEFORE_RESULTS) -> dict[str, Any] | None:
    return json.loads(path.read_text("utf-8")) if path.exists() else None


def _per_k(cpu: dict[str, float], name: str, events: int) -> float | None:
    """CPU milliseconds of one process per event."""
    used = cpu.get(name)
    return None if used is None or not events else used / events * 1000


def _baseline_figures(results: dict[str, Any]) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    for found in results.get("baseline") or []:
        shape, cpu, events = found["shape"], found.get("cpu_seconds", {}), found["events"]
        figures[f"baseline {shape}: events/s"] = Figure(found["per_second"], HIGHER)
        figures[f"baseline {shape}: database CPU ms/event"] = Figure(
            _per_k(cpu, "mongo", events), LOWER, 2
        )
        figures[f"baseline {shape}: broker CPU ms/event"] = Figure(
            _per_k(cpu, "kafka", events), LOWER, 2
        )
    return figures


def _drain_figures(results: dict[str, Any]) -> dict[str, Figure]:
    drains = results.get("drains") or {}
    figures: dict[str, Figure] = {}
    for found in drains.get("services", []):
        service, cpu, events = found["service"], found.get("cpu_seconds", {}), found["processed"]
        figures[f"{service} drain: events/s"] = Figure(found["per_second"], HIGHER)
        figures[f"{service} drain: database CPU ms/event"] = Figure(
            _per_k(cpu, "mongo", events), LOWER, 2
        )
    door = drains.get("front_door")
    if door:
        figures["intake front door: referrals/s"] = Figure(door["per_second"], HIGHER, 1)
        figures["intake front door: answer p99 ms"] = Figure(
            door.get("answer", {}).get("p99_ms"), LOWER
        )
    return figures


def held(stage: dict[str, Any]) -> bool:
    """The stage stayed below saturation: few errors, nothing lost, p99 within 5 s."""
    p99 = stage["latency"].get("p99_ms")
    return (
        stage["errors"] <= HELD_SHARE * max(stage["sent"], 1)
        and stage["missing"] <= HELD_SHARE * max(stage["accepted"], 1)
        and p99 is not None
        and p99 <= HELD_P99_MS
    )


def highest_held(stages: list[dict[str, Any]]) -> float:
    """The highest target rate the chain held before its first saturated stage (0: not even
    the first)."""
    best = 0.0
    for stage in stages:
        if not held(stage):
            break
        best = stage["rate"]
    return best


def _chain_figures(results: dict[str, Any]) -> dict[str, Figure]:
    chain = results.get("chain") or {}
    figures: dict[str, Figure] = {}
    for flow, key in (("referral", "referrals"), ("appointment", "appointments")):
        stages = chain.get(key) or []
        if not stages:
            continue
        figures[f"{flow} chain: highest rate held (/s)"] = Figure(highest_held(stages), HIGHER)
        for stage in stages:
            for percentile in ("p50", "p99"):
                figures[f"{flow} chain at {stage['rate']:g}/s: {percentile} ms"] = Figure(
                    stage["latency"].get(f"{percentile}_ms"), LOWER
                )
    for service, found in (chain.get("memory") or {}).items():
        figures[f"{service}: peak resident MB"] = Figure(found.get("peak_mb"), LOWER, 1)
    return figures


def _rebuild_figures(results: dict[str, Any]) -> dict[str, Figure]:
    rebuild = results.get("rebuild") or {}
    verify = rebuild.get("verify") or {}
    projection = rebuild.get("projection") or {}
    figures: dict[str, Figure] = {}
    if verify:
        figures["analytics rebuild: events/s"] = Figure(verify.get("per_second"), HIGHER)
        figures["analytics rebuild: writing s"] = Figure(verify.get("write_seconds"), LOWER, 1)
    if projection:
        figures["projection, upsert per update: events/s"] = Figure(
            projection.get("before_per_second"), HIGHER
        )
        figures["projection, in memory + bulk: events/s"] = Figure(
            projection.get("after_per_second"), HIGHER
        )
    return figures


_PARTS: tuple[Callable[[dict[str, Any]], dict[str, Figure]], ...] = (
    _baseline_figures,
    _drain_figures,
    _chain_figures,
    _rebuild_figures,
)


def _figures(results: dict[str, Any]) -> dict[str, Figure]:
    found: dict[str, Figure] = {}
    for part in _PARTS:
        found.update(part(results))
    return found


def _merged(old: list[str], new: list[str]) -> list[str]:
    """The new measures in order, each one only measured before right after its neighbour."""
    order = list(new)
    previous: str | None = None
    for measure in old:
        if measure not in order:
            at = len(order)
            if previous is not None and previous in order:
                at = order.index(previous) + 1
            order.insert(at, measure)
        previous = measure
    return order


def _n(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(row: Row) -> str:
    ratio = row.ratio
    if ratio is None:
        return "–"
    improved = ratio > 1 if row.better == HIGHER else ratio < 1
    text = f"{ratio:,.2f} ×"
    return f"**{text}**" if improved and abs(ratio - 1) >= 0.1 else text


def pairs_table(
    runs: list[tuple[dict[str, Any], dict[str, Any]]],
    labels: list[tuple[str, str]],
    about: Callable[[str], bool] = lambda measure: True,
    *,
    figures: Callable[[dict[str, Any]], dict[str, Figure]] = _figures,
    ratio_label: str = "after ÷ before",
) -> str:
    """Runs before and after a change, pair by pair, side by side: every measure `about`
    picks (in the newest run's order), each run's figure (its column named by `labels`), and
    each pair's ratio."""
    loaded = [(figures(before), figures(after)) for before, after in runs]
    # How each measure reads (which way is better, its digits): the same in every run.
    known = {measure: figure for pair in loaded for run in pair for measure, figure in run.items()}
    header = ["Measure", *(label for pair in labels for label in pair), ratio_label, "better when"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for measure in _merged(list(loaded[-1][0]), list(loaded[-1][1])):
        if not about(measure) or measure not in known:
            continue
        figure = known[measure]
        cells, ratios = [measure], []
        for old, new in loaded:
            row = Row(
                measure,
                old[measure].value if measure in old else None,
                new[measure].value if measure in new else None,
                figure.better,
                figure.digits,
            )
            cells += [_n(row.before, row.digits), _n(row.now, row.digits)]
            ratios.append(_ratio(row))
        lines.append("| " + " | ".join([*cells, ", ".join(ratios), figure.better]) + " |")
    return "\n".join(lines)


def table(
    before: dict[str, Any],
    now: dict[str, Any],
    label: str = BEFORE_LABEL,
    about: Callable[[str], bool] = lambda measure: True,
) -> str:
    """The rows of both runs side by side; `about` picks the measures to show."""
    return pairs_table([(before, now)], [(label, "now")], about, ratio_label="now ÷ before")


def _section(title: str, intro: str, body: str) -> str:
    return "\n".join([f"## {title}\n", intro + "\n", body + "\n"])


def section(now: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """The report's comparison section ('' when the figures from before are missing)."""
    before = before if before is not None else load_before()
    if before is None:
        return ""
    out = [
        "## Before and now: the previous engines against Apache Kafka and secantusd-rs\n",
        f"The same workloads on {BEFORE_ENGINES} "
        f"(`{BEFORE_RESULTS.parent.name}/{BEFORE_RESULTS.name}`, "
        f"{before['plan']['name']} run on {before['machine'].get('cpu_model')}, "
        f"{before['machine'].get('cores')} cores) and now, on "
        f"{now.get('machine', {}).get('kafka')} and {now.get('machine', {}).get('secantusdb')}. "
        "Ratios in bold are an improvement of 10 % or more. CPU per event counts the database "
        "server's and the broker's own process only. The baseline loop now produces as the "
        "services do (idempotent, acks=all), connects over SASL_SSL and is measured after a "
        "warm-up round.\n",
    ]
    # Through JSON: this run's plan still has tuples where the stored one has lists.
    if json.loads(json.dumps(now["plan"])) != before["plan"]:
        out.append(
            f"**This run's plan ({now['plan']['name']}) is not the one of the figures before "
            f"({before['plan']['name']}):** the workloads differ in size, so compare with care; "
            "run `make bench` (the full plan) for a fair comparison.\n"
        )
    out.append(table(before, now) + "\n")
    return "\n".join(out)


# The last full run before the services gathered their domain writes per batch (issue 9):
# trajectory did already, intake, notifications and learning wrote one document at a time.
GATHERED_BEFORE = BEFORE_RESULTS.parent / "2026-12-02-2133.json"
GATHERED_MEASURES = ("baseline bulk: events/s", "drain", "front door", "chain", "resident")


def gathered_section(now: dict[str, Any], before_path: Path = GATHERED_BEFORE) -> str:
    """Before and after the domain writes gathered per batch, on the same engines ('' when
    the run before is missing)."""
    before = load_before(before_path)
    if before is None:
        return ""
    return _section(
        "Before and after: domain writes gathered per batch (issue 9)",
        f"The last full run before intake, notifications and learning gathered their domain "
        f"documents per consumed batch (`{before_path.parent.name}/{before_path.name}`, "
        "trajectory and analytics gathered already) against this run, on the same engines "
        "and machine. The host is shared: the bare bulk loop of each run (section 1) shows "
        "how busy it was.",
        table(
            before,
            now,
            label=f"before ({before_path.stem})",
            about=lambda measure: any(word in measure for word in GATHERED_MEASURES),
        ),
    )


def _cpu_figures(results: dict[str, Any]) -> dict[str, Figure]:
    """Each process's CPU per event: on a shared machine the figure a change moves least
    by accident (a rate moves with whatever else the host runs)."""
    figures: dict[str, Figure] = {}
    drains = results.get("drains") or {}
    for found in drains.get("services", []):
        service, cpu = found["service"], found.get("cpu_seconds", {})
        figures[f"{service} drain: {service} CPU ms/event"] = Figure(
            _per_k(cpu, service, found["processed"]), LOWER, 2
        )
    door = drains.get("front_door")
    if door:
        for process in ("intake", "mongo"):
            name = PROCESSES.get(process, process)
            figures[f"intake front door: {name} CPU ms/referral"] = Figure(
                _per_k(door.get("cpu_seconds", {}), process, door.get("created", 0)), LOWER, 2
            )
    for flow, key in (("referral", "referrals"), ("appointment", "appointments")):
        for stage in (results.get("chain") or {}).get(key) or []:
            for process, used in (stage.get("cpu_seconds") or {}).items():
                figures[
                    f"{flow} chain at {stage['rate']:g}/s: {PROCESSES.get(process, process)} "
                    f"CPU ms/{flow}"
                ] = Figure(_per_k({process: used}, process, stage["sent"]), LOWER, 2)
    return figures


def _quiet_figures(results: dict[str, Any]) -> dict[str, Figure]:
    """Each process's CPU while the chain has nothing to do, in cores."""
    quiet = (results.get("chain") or {}).get("quiet")
    if not quiet:
        return {}
    return {
        f"quiet chain: {PROCESSES.get(process, process)} CPU cores": Figure(
            used / quiet["seconds"], LOWER, 3
        )
        for process, used in quiet["cpu_seconds"].items()
        if process != "bench"  # the benchmark itself, waiting
    }


def _with_cpu(results: dict[str, Any]) -> dict[str, Figure]:
    return {**_figures(results), **_cpu_figures(results), **_quiet_figures(results)}


@dataclass(frozen=True)
class Alternating:
    """Full runs of the code before and after a change, taken in turn on one machine, by
    the names of their results (`pairs` of before and after), and the `measures` (parts of
    their names) the report shows of them, CPU per event included."""

    title: str
    intro: str
    pairs: tuple[tuple[str, str], ...]
    measures: tuple[str, ...]

    def section(self) -> str:
        """The report's section ('' when a run is missing)."""
        paths = [
            (BEFORE_RESULTS.parent / f"{before}.json", BEFORE_RESULTS.parent / f"{after}.json")
            for before, after in self.pairs
        ]
        if not all(before.exists() and after.exists() for before, after in paths):
            return ""
        runs = [
            (json.loads(before.read_text("utf-8")), json.loads(after.read_text("utf-8")))
            for before, after in paths
        ]
        labels = [
            (f"before {number} (`{before}`)", f"after {number} (`{after}`)")
            for number, (before, after) in enumerate(self.pairs, 1)
        ]
        body = pairs_table(
            runs,
            labels,
            lambda measure: any(part in measure for part in self.measures),
            figures=_with_cpu,
        )
        return _section(self.title, self.intro, body)


# Before-code results are named -before, so that no report takes them for main's newest run.
PLACES = Alternating(
    "Before and after: a place is a document of its own, the relay publishes directly "
    "(issue 9, 2026-12-03)",
    "Full runs of main before (3704325) and after (e1499af) these two changes, taken in turn "
    "on the same machine, as the host was busy and slowed whole runs (see the bare bulk "
    "loop). The CPU per referral moves least by accident; the rates and latencies moved with "
    "the host.",
    (
        ("2026-12-03-0746-before", "2026-12-03-0749"),
        ("2026-12-03-0753-before", "2026-12-03-0756"),
    ),
    (
        "referral chain at 50/s: p99",
        "referral chain at 100/s",
        "appointment chain at 100/s: p99",
        "intake front door",
        "drain: events/s",
        "baseline bulk: events/s",
    ),
)
READ_AHEAD = Alternating(
    "Before and after: a batch reads its aggregates ahead (issue 9, 2026-12-03)",
    "Full runs of main before (c2ee83a) and after (9602cc6) trajectory's and notifications' "
    "lookups per event became one query per batch, and notifications' contact cards and "
    "consents were gathered, taken in turn on the same machine (after at 10:46, before at "
    "10:49, after at 10:53, before at 10:57). The host kept changing speed; compare the CPU "
    "per event of the two services that changed.",
    (
        ("2026-12-03-1049-before", "2026-12-03-1046"),
        ("2026-12-03-1057-before", "2026-12-03-1053"),
    ),
    (
        "trajectory drain",
        "notifications drain",
        "referral chain at 100/s",
        "appointment chain at 100/s: p99",
        "baseline bulk: events/s",
    ),
)
CARRIED = Alternating(
    "Before and after: intake's outbox in the same write as its new documents "
    "(issue 9, 2026-12-03)",
    "Full runs of main before (e829cd0) and after (d9c6a99) the outbox documents of an intake "
    "command or batch went in the client-level bulkWrite of its new documents instead of an "
    "insert of their own, taken in turn on the same machine (after at 11:18, before at "
    "11:21, after at 11:24, before at 11:28).",
    (
        ("2026-12-03-1121-before", "2026-12-03-1118"),
        ("2026-12-03-1128-before", "2026-12-03-1124"),
    ),
    (
        "intake drain",
        "intake front door",
        "referral chain at 100/s: p99",
        "referral chain at 100/s: intake",
        "referral chain at 100/s: secantusd-rs",
        "baseline bulk: events/s",
    ),
)
AHEAD_IN_INTAKE = Alternating(
    "Before and after: intake reads a batch of partner referrals ahead (issue 9, 2026-12-03)",
    "Full runs of main before (3b223ff) and after (0580e8f) intake's batch of partner "
    "referrals read its keys and persons in one query each and claimed its places in one "
    "write, taken in turn on the same machine (before at 13:39, after at 13:44, before at "
    "13:48, after at 13:52). The host was much slower than on the morning of the report's run "
    "(the bare bulk loop 2,621 to 2,765 events/s against 4,761).",
    (
        ("2026-12-03-1339-before", "2026-12-03-1344"),
        ("2026-12-03-1348-before", "2026-12-03-1352"),
    ),
    (
        "intake drain",
        "intake front door",
        "referral chain at 100/s: p99",
        "referral chain at 100/s: intake",
        "baseline bulk: events/s",
    ),
)
TOGETHER_AT_THE_DOOR = Alternating(
    "Before and after: referrals at the front door at the same moment received together "
    "(issue 9, 2026-12-03)",
    "Full runs of main before (632f93a) and after (6642c3c) intake received the referrals "
    "that reach its front door while one is being received in one transaction together, "
    "taken in turn on the same machine (after at 15:36, before at 15:39, after at 15:43, "
    "before at 15:47). A faster host than the afternoon's runs above, slower than the "
    "morning's (the bare bulk loop 3,319 to 3,697 events/s).",
    (
        ("2026-12-03-1539-before", "2026-12-03-1536"),
        ("2026-12-03-1547-before", "2026-12-03-1543"),
    ),
    (
        "intake front door",
        "referral chain at 100/s: p99",
        "referral chain at 100/s: intake",
        "referral chain at 100/s: secantusd-rs",
        "referral chain at 100/s: Kafka",
        "baseline bulk: events/s",
    ),
)
LEAN_LOAD = Alternating(
    "Before and after: the load through the benchmark's own HTTP client (issue 9, 2026-12-03)",
    "Full runs of main before (1719591: the load through httpx) and after (the load through "
    "benchmarks/load_client.py), taken in turn on the same machine (after at 19:26, before "
    "at 19:32, after at 19:37, before at 19:42), each holding 100/s for 60 s. The load "
    "generator is `bench` in the CPU figures; the chain is every other process.",
    (
        ("2026-12-03-1932-before", "2026-12-03-1926"),
        ("2026-12-03-1942-before", "2026-12-03-1937"),
    ),
    (
        "intake front door",
        "referral chain at 100/s",
        "appointment chain at 100/s",
        "baseline bulk: events/s",
    ),
)
DESK = Alternating(
    "Before and after: a worker's actions carried out together (issue 9, 2026-12-03)",
    "Full runs of main before (202ec7a) and after (ec8fccd) trajectory carried out the "
    "workers' actions that arrive while one is under way in one transaction together, taken "
    "in turn on the same machine (before at 22:36, after at 22:42, before at 22:47, after at "
    "22:53), each holding 100/s for 60 s.",
    (
        ("2026-12-03-2236-before", "2026-12-03-2242"),
        ("2026-12-03-2247-before", "2026-12-03-2253"),
    ),
    (
        "appointment chain at 100/s",
        "referral chain at 100/s: p99",
        "trajectory drain",
        "baseline bulk: events/s",
    ),
)


FETCH_WAIT = Alternating(
    "Before and after: consumers' fetch held until a batch is there (issue 9, 2026-12-04)",
    "Full runs of the same code (55d828d and the setting), the consumers' fetch answered at "
    "once (`CONSUMER_FETCH_WAIT_MS=0`, before) or held up to 50 ms until 32 KiB of events "
    "are there (after), taken in turn on the same machine (after at 01:32, before at 01:37, "
    "after at 01:42, before at 01:48), each holding 100/s for 60 s.",
    (
        ("2026-12-04-0137-fetchnone", "2026-12-04-0132-fetchwait"),
        ("2026-12-04-0148-fetchnone", "2026-12-04-0142-fetchwait"),
    ),
    (
        "appointment chain at 100/s",
        "referral chain at 100/s",
        "drain: events/s",
        "baseline bulk: events/s",
    ),
)


LAST_WRITE = Alternating(
    "Before and after: a unit of work ends with one write (issue 9, 2026-12-04)",
    "Full runs of main before (f3cd553: a write per collection, the inbox looked in before "
    "each batch) and after (ff35637: `kit.last_write`, together up to 20 writes), taken in "
    "turn on the same machine (before at 02:19, after at 02:35, before at 02:40, after at "
    "02:45), each holding 100/s for 60 s.",
    (
        ("2026-12-04-0219-before", "2026-12-04-0235-lw20"),
        ("2026-12-04-0240-before", "2026-12-04-0245-lw20"),
    ),
    (
        "appointment chain at 100/s",
        "referral chain at 100/s",
        "drain: events/s",
        "drain: database CPU",
        "baseline bulk: events/s",
    ),
)


PER_EVENT = Alternating(
    "Before and after: less of the kit's own work per consumed event (issue 9, 2026-12-04)",
    "Full runs of f68c456 (before) and b1a0f2d (after: an event's log context in one "
    "context variable, ids from `os.urandom`, a metric's child looked up once per event "
    "type of a batch), both with the benchmarks of bd0b1e3 (drains of 4,000 events, timed "
    "from the first handled batch), taken in turn on the same machine (after at 12:28, "
    "before at 12:33, after at 12:39, before at 12:45), each holding 100/s for 60 s.",
    (
        ("2026-12-04-1233-before", "2026-12-04-1228"),
        ("2026-12-04-1245-before", "2026-12-04-1239"),
    ),
    (
        "drain: events/s",
        "CPU ms/event",
        "appointment chain at 100/s",
        "referral chain at 100/s",
        "baseline bulk: events/s",
    ),
)


FETCH_PACING = Alternating(
    "Before and after: a fetch held for a batch only while events flow (issue 9, 2026-12-04)",
    "Full runs of aa94e99 (before: every fetch may be held 50 ms for 32 KiB) and 507c538 "
    "(after: `kit.fetch_pacing`, after an empty fetch the next waits up to 500 ms for the "
    "first event), the same benchmarks (the chain with nothing to do measured for 10 s "
    "before the load), taken in turn on the same machine (before at 14:31, after at 14:37, "
    "before at 14:43, after at 14:49), each holding 100/s for 60 s.",
    (
        ("2026-12-04-1431-before", "2026-12-04-1437"),
        ("2026-12-04-1443-before", "2026-12-04-1449"),
    ),
    (
        "quiet chain",
        "chain at 10/s: p",
        "chain at 100/s: p99",
        "drain: events/s",
        "baseline bulk: events/s",
    ),
)
