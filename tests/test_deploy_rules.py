"""The Prometheus rules, their unit tests and the Prometheus and Alertmanager configurations,
checked by the tools Prometheus ships: promtool and amtool.

Both come from Debian: `apt-get install -y --no-install-recommends prometheus
prometheus-alertmanager`. Without them these tests skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"

_INSTALL = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: {_INSTALL})")
    return path


def _run(*command: str | Path, cwd: Path = PROMETHEUS) -> str:
    """Run a tool, fail with its output if it fails, return what it printed on stdout."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{output}"
    return result.stdout


def test_there_are_rules_and_tests_for_them() -> None:
    assert [path.name for path in RULES] == ["ketenbus.rules.yml"]
    assert len(RULE_TESTS) >= 1


def test_promtool_check_rules() -> None:
    output = _run(_tool("promtool"), "check", "rules", *RULES)
    assert "SUCCESS" in output


def test_promtool_test_rules() -> None:
    output = _run(_tool("promtool"), "test", "rules", *RULE_TESTS)
    assert "FAILED" not in output


def test_every_alert_has_a_unit_test() -> None:
    rules = "".join(path.read_text(encoding="utf-8") for path in RULES)
    tests = "".join(path.read_text(encoding="utf-8") for path in RULE_TESTS)
    alerts = {line.split(":", 1)[1].strip() for line in rules.splitlines() if "- alert:" in line}
    assert alerts
    untested = {alert for alert in alerts if f"alertname: {alert}\n" not in tests}
    assert untested == set()


def _alerts() -> list[dict]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _fields(template: str) -> set[str]:
    """What a text fills in: `$labels.service`, `$value | humanize`, ..."""
    return set(re.findall(r"\{\{\s*(.*?)\s*\}\}", template))


def test_every_alert_speaks_dutch_and_english_with_the_same_figures() -> None:
    # Dutch in summary and description, what Alertmanager's mails and Grafana show first;
    # English beside it in summary_en and description_en (deploy/README.md, "Alerts").
    alerts = _alerts()
    assert alerts
    for rule in alerts:
        annotations = rule["annotations"]
        for text in ("summary", "description"):
            dutch, english = annotations.get(text, ""), annotations.get(f"{text}_en", "")
            assert dutch.strip() and english.strip(), (rule["alert"], text)
            assert dutch != english, (rule["alert"], text, "not translated")
            # The Dutch may write a figure the Dutch way (reReplaceAll), never leave one out.
            dutch_fields = {field.split(" | reReplaceAll")[0] for field in _fields(dutch)}
            assert dutch_fields == _fields(english), (rule["alert"], text)


def test_promtool_check_config() -> None:
    # The config names its rule files relative to itself, as they are mounted in the container.
    output = _run(_tool("promtool"), "check", "config", PROMETHEUS / "prometheus.yml")
    assert "SUCCESS" in output


def test_amtool_check_config() -> None:
    output = _run(_tool("amtool"), "check-config", ALERTMANAGER, cwd=DEPLOY)
    assert "SUCCESS" in output


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("alertname=KetenbusServiceDown", "severity=critical"), "operations-pager"),
        (("alertname=KetenbusDeadLettered", "severity=warning"), "operations-mail"),
        (
            ("alertname=KetenbusNoShowRateJump", "severity=critical", "team=management"),
            "management-mail",
        ),
    ],
)
def test_alertmanager_routes(labels: tuple[str, ...], receiver: str) -> None:
    output = _run(
        _tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        *labels,
        cwd=DEPLOY,
    )
    assert output.strip() == receiver


def test_every_runbook_an_alert_names_exists() -> None:
    rules = "".join(path.read_text(encoding="utf-8") for path in RULES)
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", readme, re.M)
    }
    named = set(re.findall(r'runbook: "deploy/README\.md#([a-z0-9-]+)"', rules))
    assert named
    assert named <= anchors
