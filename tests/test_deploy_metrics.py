"""Every metric a Grafana panel or a Prometheus rule uses must be one the services export.

The catalogue of exported metrics is built from the code, not copied: the kit's KitMetrics and
FastStream's Kafka Prometheus middleware are instantiated on fresh registries and their metric
families expanded to the sample names Prometheus stores (a counter `x` is stored as `x_total`
and `x_created`, a histogram as `x_bucket`, `x_sum`, `x_count`, `x_created`). The domain gauges
come from deploy/domain_metrics.txt, which the services promise to export.

Metric names are taken from PromQL with a small tokenizer: strings, label matchers, ranges and
grouping clauses are removed, then every identifier that is not a function, an aggregation or
a keyword is a metric name. It is tested below on expressions it must and must not accept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from ketenbus.kit.metrics import KitMetrics

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
DOMAIN_METRICS = DEPLOY / "domain_metrics.txt"

# Series Prometheus makes itself for every target, and what it records about alerts.
PROMETHEUS_BUILTINS = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "ALERTS",
        "ALERTS_FOR_STATE",
    }
)


# What prometheus_client's ProcessCollector exports (Linux, from /proc), which the kit registers
# on every service's registry: resident memory is the 150 MB budget of KetenbusServiceMemoryHigh.
PROCESS_METRICS = frozenset(
    {
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
    }
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# PromQL (Prometheus 2.42 up to 3.x): functions, aggregation operators, keywords.
FUNCTIONS = _words(
    """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv double_exponential_smoothing exp floor histogram_avg
    histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
    histogram_sum holt_winters hour idelta increase info irate label_join label_replace
    last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin
    sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time
    stdvar_over_time sum_over_time tan tanh time timestamp vector year
    """
)
AGGREGATIONS = _words(
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk
    limit_ratio
    """
)
KEYWORDS = _words(
    """
    by without on ignoring group_left group_right offset bool and or unless atan2 start end
    inf nan
    """
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_AT_MODIFIER = re.compile(r"@\s*(?:start\s*\(\s*\)|end\s*\(\s*\)|[-+]?[\d.]+)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((.*)\)\s*$", re.S)


class PromQLError(ValueError):
    pass


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads. Raises PromQLError for an unknown function."""
    text = _GRAFANA_VARIABLE.sub("5m", expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _AT_MODIFIER.sub("", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        lowered = word.lower()
        if call:
            if lowered not in FUNCTIONS | AGGREGATIONS | KEYWORDS:
                raise PromQLError(f"unknown function {word}() in {expr!r}")
            continue
        if lowered in KEYWORDS or lowered in AGGREGATIONS:
            # `sum by (x) (...)`: the grouping clause was removed, so the aggregation is no
            # longer followed directly by "(".
            continue
        names.add(word)
    return names


def variable_metric_names(query: str) -> set[str]:
    """Metric names in a Grafana template variable query (label_values(metric, label))."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        return metric_names(query)
    arguments = match.group(1)
    # label_values(label) reads no metric; label_values(selector, label) reads the selector.
    # Blank out strings (keeping their length) so that a comma inside a matcher is no split.
    blanked = _STRING.sub(lambda m: '"' + " " * (len(m.group()) - 2) + '"', arguments)
    selector, comma, _label = blanked.rpartition(",")
    if not comma:
        return set()
    return metric_names(arguments[: len(selector)])


# ------------------------------------------------------------------ the catalogue


def _stored_names(registry: CollectorRegistry) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "info": ("_info",),
        "stateset": ("",),
        "gauge": ("",),
        "unknown": ("",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
        names.update(sample.name for sample in family.samples)
    return names


def kit_metric_names() -> set[str]:
    registry = CollectorRegistry()
    KitMetrics(registry, "catalogue")
    return _stored_names(registry)


def faststream_metric_names() -> set[str]:
    registry = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=registry, app_name="catalogue")
    names = _stored_names(registry)
    # FastStream 0.7 registers its metrics when the middleware is created. Should a later
    # version register them lazily, fall back on the names in faststream/prometheus/container.py.
    return names or {
        f"faststream_{name}"
        for name in (
            "received_messages_total",
            "received_messages_created",
            "received_messages_in_process",
            *(
                f"{base}_{suffix}"
                for base in (
                    "received_messages_size_bytes",
                    "received_processed_messages_duration_seconds",
                    "published_messages_duration_seconds",
                )
                for suffix in ("bucket", "sum", "count", "created")
            ),
            "received_processed_messages_total",
            "received_processed_messages_created",
            "received_processed_messages_exceptions_total",
            "received_processed_messages_exceptions_created",
            "published_messages_total",
            "published_messages_created",
            "published_messages_exceptions_total",
            "published_messages_exceptions_created",
        )
    }


def domain_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """deploy/domain_metrics.txt: name -> (type, label names)."""
    metrics: dict[str, tuple[str, tuple[str, ...]]] = {}
    for number, line in enumerate(DOMAIN_METRICS.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        assert len(parts) == 3, f"domain_metrics.txt:{number}: want 'name type labels': {line!r}"
        name, kind, labels = parts
        assert re.fullmatch(r"ketenbus_[a-z0-9_]+", name), f"domain_metrics.txt:{number}: {name}"
        assert kind in {"gauge", "counter", "histogram"}, f"domain_metrics.txt:{number}: {kind}"
        assert name not in metrics, f"domain_metrics.txt:{number}: {name} listed twice"
        metrics[name] = (kind, () if labels == "-" else tuple(labels.split(",")))
    return metrics


def domain_metric_names() -> set[str]:
    suffixes = {
        "gauge": ("",),
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }
    return {
        name + suffix
        for name, (kind, _labels) in domain_metrics().items()
        for suffix in suffixes[kind]
    }


def recorded_names() -> set[str]:
    return {str(rule["record"]) for rule in _rules() if "record" in rule}


def exported_names() -> set[str]:
    return kit_metric_names() | faststream_metric_names() | domain_metric_names() | PROCESS_METRICS


def catalogue() -> set[str]:
    """What a query may read: the exported metrics, Prometheus' own series, recorded series."""
    return exported_names() | PROMETHEUS_BUILTINS | recorded_names()


# ------------------------------------------------------------------ what uses metrics


def _rules() -> list[dict[str, object]]:
    yaml = pytest.importorskip(
        "yaml",
        reason="PyYAML is not installed in the workspace: add pyyaml to the dev dependency "
        "group to check the metric names in the alert rules",
    )
    rules: list[dict[str, object]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


def rule_expressions() -> Iterator[tuple[str, str]]:
    for rule in _rules():
        yield f"rule {rule.get('alert') or rule.get('record')}", str(rule["expr"])


def _panels(panels: list[dict[str, object]]) -> Iterator[dict[str, object]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # type: ignore[arg-type]


def dashboard_expressions(dashboard: dict[str, object]) -> Iterator[tuple[str, str, bool]]:
    """(where, query, is a template variable query) for every query in a dashboard."""
    title = dashboard["title"]
    for panel in _panels(dashboard.get("panels", [])):  # type: ignore[arg-type]
        for target in panel.get("targets", []):  # type: ignore[attr-defined]
            yield f"{title} / {panel['title']} / {target['refId']}", target["expr"], False
    for variable in dashboard.get("templating", {}).get("list", []):  # type: ignore[attr-defined]
        if variable.get("type") == "query":
            query = variable["query"]
            query = query.get("query", "") if isinstance(query, dict) else query
            yield f"{title} / variable {variable['name']}", query, True


def unknown_metrics(
    expressions: list[tuple[str, str, bool]], known: set[str]
) -> dict[str, set[str] | str]:
    problems: dict[str, set[str] | str] = {}
    for where, expr, is_variable in expressions:
        try:
            names = variable_metric_names(expr) if is_variable else metric_names(expr)
        except PromQLError as error:
            problems[where] = str(error)
            continue
        if not names and not is_variable:
            problems[where] = f"reads no metric: {expr!r}"
        elif names - known:
            problems[where] = names - known
    return problems


def _load(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data


# ------------------------------------------------------------------ tests


def test_the_catalogue_holds_the_kit_and_faststream_metrics_under_their_stored_names() -> None:
    kit = kit_metric_names()
    assert {
        "ketenbus_handler_seconds_bucket",
        "ketenbus_events_handled_total",
        "ketenbus_handler_retries_total",
        "ketenbus_dlq_messages_total",
        "ketenbus_dlq_messages_created",
        "ketenbus_outbox_backlog",
        "ketenbus_outbox_published_total",
        "ketenbus_outbox_oldest_age_seconds",
        "ketenbus_consumer_lag",
        "ketenbus_ready",
        "ketenbus_service_info",
    } <= kit
    # A counter is never stored under its bare family name.
    assert "ketenbus_dlq_messages" not in kit
    assert {
        "faststream_received_messages_total",
        "faststream_received_processed_messages_duration_seconds_bucket",
        "faststream_published_messages_exceptions_total",
    } <= faststream_metric_names()
    assert kit <= exported_names()


def test_the_kit_exports_the_process_metrics() -> None:
    """The memory alert reads process_resident_memory_bytes: were the kit to stop registering
    the ProcessCollector, that alert would never fire, and nothing else would say so."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("ProcessCollector exports nothing without /proc")
    assert PROCESS_METRICS - kit_metric_names() == set()


def test_domain_metrics_are_the_agreed_gauges() -> None:
    assert domain_metrics() == {
        "ketenbus_open_trajectories": ("gauge", ("organisation",)),
        "ketenbus_waiting_list": ("gauge", ("organisation",)),
        "ketenbus_no_show_rate": ("gauge", ("organisation", "kind")),
        "ketenbus_reminders_due": ("gauge", ("organisation",)),
        "ketenbus_reminders_overdue": ("gauge", ("organisation",)),
        "ketenbus_analytics_events_seen": ("gauge", ("event_type",)),
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        ('up{job=~"ketenbus-.+"} == 0', {"up"}),
        (
            "histogram_quantile(0.99, sum by (le, service) "
            "(rate(ketenbus_handler_seconds_bucket[$__rate_interval])))",
            {"ketenbus_handler_seconds_bucket"},
        ),
        (
            'max by (organisation, kind) (x_rate{kind="intake"}) - on (organisation, kind) '
            "max by (organisation, kind) (avg_over_time(x_rate[7d] offset 1d)) > 0.15",
            {"x_rate"},
        ),
        ("sum without (instance) (a_total) / ignoring (le) group_left (svc) b", {"a_total", "b"}),
        (
            "a_total unless a_total offset 15m and (time() - a_created < 9e2)",
            {"a_total", "a_created"},
        ),
        ('absent(up{service="intake"}) or absent(up{service="x"})', {"up"}),
        ('count_values("version", build_info) > 1e3', {"build_info"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', {"m"}),
        ("rate(m[5m:1m]) @ end()", {"m"}),
        ('{__name__="ignored_by_name_selector"}', set()),
        ('sum(rate(m_total{service=~"${service}"}[5m])) by (service)', {"m_total"}),
        ("-Inf < NaN", set()),
    ],
)
def test_metric_names_are_found_and_only_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_an_unknown_function_is_an_error() -> None:
    with pytest.raises(PromQLError, match="ratee"):
        metric_names("ratee(ketenbus_ready[5m])")


def test_template_variable_queries() -> None:
    assert variable_metric_names("label_values(ketenbus_service_info, service)") == {
        "ketenbus_service_info"
    }
    assert variable_metric_names('label_values(up{job=~"a,b"}, job)') == {"up"}
    assert variable_metric_names("label_values(service)") == set()


def test_the_check_fails_on_an_unknown_metric() -> None:
    """The check itself: a misspelt metric or a counter without _total is reported."""
    known = kit_metric_names()
    problems = unknown_metrics(
        [
            ("good", "sum(rate(ketenbus_dlq_messages_total[5m]))", False),
            ("bare counter", "sum(rate(ketenbus_dlq_messages[5m]))", False),
            ("misspelt", "max by (service) (ketenbus_outbox_backlogg)", False),
            ("no metric", "1 + 1", False),
            ("unknown function", "rat(ketenbus_ready[5m])", False),
            ("variable", "label_values(ketenbus_nonexistent, service)", True),
        ],
        known,
    )
    assert problems == {
        "bare counter": {"ketenbus_dlq_messages"},
        "misspelt": {"ketenbus_outbox_backlogg"},
        "no metric": "reads no metric: '1 + 1'",
        "unknown function": "unknown function rat() in 'rat(ketenbus_ready[5m])'",
        "variable": {"ketenbus_nonexistent"},
    }


def test_there_are_two_dashboards_and_rules() -> None:
    assert {path.stem for path in DASHBOARDS} == {"ketenbus-operations", "ketenbus-management"}
    assert [path.name for path in RULE_FILES] == ["ketenbus.rules.yml"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_metric_a_dashboard_uses_is_exported(path: Path) -> None:
    # Dashboards may not read recorded series: they must work without the rules loaded.
    known = exported_names() | PROMETHEUS_BUILTINS
    expressions = list(dashboard_expressions(_load(path)))
    assert len(expressions) > 5
    assert unknown_metrics(expressions, known) == {}


def test_every_metric_a_rule_uses_is_exported() -> None:
    known = catalogue()
    expressions = [(where, expr, False) for where, expr in rule_expressions()]
    assert len(expressions) >= 10
    assert unknown_metrics(expressions, known) == {}


def test_the_dashboards_show_what_operators_and_managers_asked_for() -> None:
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        dashboard = _load(path)
        used[path.stem] = set().union(
            *(metric_names(expr) for _, expr, var in dashboard_expressions(dashboard) if not var)
        )
    assert {
        "faststream_received_messages_total",
        "faststream_published_messages_total",
        "ketenbus_handler_seconds_bucket",
        "ketenbus_consumer_lag",
        "ketenbus_events_handled_total",
        "ketenbus_dlq_messages_total",
        "ketenbus_outbox_backlog",
        "ketenbus_outbox_oldest_age_seconds",
        "ketenbus_ready",
    } <= used["ketenbus-operations"]
    assert set(domain_metrics()) <= used["ketenbus-management"]
    operations = json.dumps(_load(DEPLOY / "grafana/dashboards/ketenbus-operations.json"))
    for quantile in ("0.5", "0.95", "0.99"):
        latency = f"histogram_quantile({quantile}, sum by (le, service) (rate(ketenbus_handler_"
        assert latency in operations


def test_every_alert_the_issue_asks_for_exists() -> None:
    alerts = {rule["alert"]: str(rule["expr"]) for rule in _rules() if "alert" in rule}
    wanted = {
        "KetenbusConsumerLagGrowing": "ketenbus_consumer_lag",
        "KetenbusDeadLettered": "ketenbus_dlq_messages_total",
        "KetenbusOutboxBacklog": "ketenbus_outbox_backlog",
        "KetenbusOutboxStalled": "ketenbus_outbox_oldest_age_seconds",
        "KetenbusRemindersOverdue": "ketenbus_reminders_overdue",
        "KetenbusServiceDown": "up",
        "KetenbusServiceNotReady": "ketenbus_ready",
        "KetenbusNoShowRateJump": "ketenbus_no_show_rate",
        "KetenbusServiceMemoryHigh": "process_resident_memory_bytes",
    }
    for alert, metric in wanted.items():
        assert alert in alerts, alert
        assert metric in metric_names(alerts[alert]), alert


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_column_override_still_finds_its_columns(path: Path) -> None:
    # The columns are renamed to the readers' words (Dutch, the sector's terms); an override
    # that matches a column by name must follow, or the no-show shows as 0.25 instead of 25 %.
    for panel in _load(path)["panels"]:
        columns = [
            name
            for step in panel.get("transformations", [])
            for name in step.get("options", {}).get("renameByName", {}).values()
        ]
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            matcher = override["matcher"]
            if columns and matcher["id"] == "byRegexp":
                assert any(re.fullmatch(matcher["options"], c) for c in columns), panel["title"]
