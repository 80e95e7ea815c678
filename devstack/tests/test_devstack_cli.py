"""The `ketenbus` command, run in-process against fake services on the session's servers."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ketenbus.devstack.cli import main
from ketenbus.devstack.kafka_access import ADMIN, KafkaAccess
from ketenbus.devstack.stack import SERVICES, EmbeddedStack

pytestmark = pytest.mark.chain

FAKE_SERVICE_DIR = str(Path(__file__).parent)


@pytest.fixture
def home(
    tmp_path: Path, kafka: KafkaAccess, mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A home for the CLI; Kafka and Mongo come from the environment, as a developer may set.
    The command speaks Dutch unless told otherwise."""
    monkeypatch.delenv("KETENBUS_LANGUAGE", raising=False)
    monkeypatch.delenv("KETENBUS_DEMO_LANGUAGE", raising=False)
    for name, value in kafka.service_environment(ADMIN).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MONGODB_URL", mongo_url)
    monkeypatch.setenv("PYTHONPATH", FAKE_SERVICE_DIR)  # reaches the services: fake_service
    home = tmp_path / "ketenbus-home"
    try:
        yield home
    finally:
        EmbeddedStack(home).stop(timeout=5)  # whatever a failed test left running


def ketenbus(home: Path, *args: str) -> int:
    return main(["--home", str(home), "--service-module", "fake_service", "--free-ports", *args])


def test_up_status_logs_down(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ketenbus(home, "up", "--timeout", "30") == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"de Ketenbus-stack start in {home} ...\ngestart in ")
    assert "\nWAT " in printed and "mail (ontvangen)" in printed
    stack = EmbeddedStack(home)
    for name in SERVICES:
        assert f"{stack.service_url(name)}/metrics" in printed
        assert f"{stack.service_url(name)}/asyncapi" in printed
        assert f"{stack.service_url(name)}/docs" in printed
    assert stack.kafka_bootstrap in printed
    assert stack.mongo_url in printed
    assert str(stack.mail_dir) in printed
    assert stack.sms_url in printed

    assert ketenbus(home, "status") == 0
    status = capsys.readouterr().out.splitlines()
    assert status[0].split() == ["ONDERDEEL", "PID", "DRAAIT", "GEREED", "URL"]
    assert len(status) == 1 + 4 + len(SERVICES)
    assert all(" ja " in line for line in status[1:])

    assert ketenbus(home, "logs", "intake", "-n", "5") == 0
    assert "fake service listening on" in capsys.readouterr().out

    assert ketenbus(home, "up") == 1
    assert "already running" in capsys.readouterr().err

    assert ketenbus(home, "down") == 0
    assert not EmbeddedStack(home).is_running()
    assert f"de stack in {home} is gestopt" in capsys.readouterr().out
    assert ketenbus(home, "status") == 1
    assert "er draait geen stack" in capsys.readouterr().err


def test_up_with_replicas_runs_and_lists_each_replica(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ketenbus(home, "up", "--replicas", "2", "--timeout", "30") == 0
    printed = capsys.readouterr().out
    stack = EmbeddedStack(home)
    for name in SERVICES:
        assert stack.replicas_of(name) == [name, f"{name}-2"]
        for url in stack.service_urls(name):
            assert f"{url}/metrics" in printed

    assert ketenbus(home, "status") == 0
    status = capsys.readouterr().out.splitlines()
    assert len(status) == 1 + 4 + 2 * len(SERVICES)

    assert ketenbus(home, "down") == 0
    assert not EmbeddedStack(home).is_running()


def test_up_names_the_service_that_does_not_start_and_stops_everything(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EXIT_CODE", "2")  # every fake service exits at once

    assert ketenbus(home, "up", "--timeout", "30") == 1

    error = capsys.readouterr().err
    assert error.startswith("ketenbus up: service ")
    assert "exited before it was ready" in error
    assert "cannot connect to the broker (on purpose)" in error
    assert not EmbeddedStack(home).is_running()


def test_a_failed_service_makes_status_fail(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ketenbus(home, "up", "--timeout", "30") == 0
    EmbeddedStack(home).kill_service("learning")
    capsys.readouterr()

    assert ketenbus(home, "status") == 1
    assert "draait niet of is niet gereed: learning" in capsys.readouterr().err


def test_demo_runs_the_scenario_on_the_stack(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    async def run(stack: EmbeddedStack) -> None:
        seen.append(stack.urls())

    scenario = types.ModuleType("ketenbus.devstack.scenario")
    scenario.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ketenbus.devstack.scenario", scenario)

    assert ketenbus(home, "demo", "--timeout", "30") == 0

    [urls] = seen
    assert set(SERVICES) <= set(urls)
    stack = EmbeddedStack(home)
    assert stack.is_running()  # the demo leaves the stack up
    left_over = [stack.mail_dir / "earlier.eml", stack.reports_dir / "figures.csv"]
    for path in left_over:
        path.parent.mkdir(exist_ok=True)
        path.write_text("from the year before")
    capsys.readouterr()

    # Again: a year on top of the earlier one would mix both, so it begins empty.
    assert ketenbus(home, "demo", "--timeout", "30") == 0
    printed = capsys.readouterr().out
    assert f"de stack in {home} draait al: hij stopt en begint leeg" in printed
    assert "zijn gewist: de demo begint op een lege keten" in printed
    assert len(seen) == 2 and stack.is_running()
    assert not any(path.exists() for path in left_over)


def test_down_without_a_stack_is_fine(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ketenbus(home, "down") == 0
    assert f"er draait geen stack in {home}" in capsys.readouterr().out


def test_dlq_without_a_stack_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ketenbus(home, "dlq", "list", "ketenbus.intake.referrals.v1") == 1
    assert "ketenbus dlq: er draait geen stack" in capsys.readouterr().err


def test_speaks_english_when_asked(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETENBUS_LANGUAGE", "en")
    assert ketenbus(home, "up", "--timeout", "30") == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"starting the Ketenbus stack in {home} ...\nup in ")
    assert "\nWHAT " in printed and "mail (received)" in printed

    assert ketenbus(home, "status") == 0
    status = capsys.readouterr().out.splitlines()
    assert status[0].split() == ["COMPONENT", "PID", "ALIVE", "READY", "URL"]
    assert all(" yes " in line for line in status[1:])

    assert ketenbus(home, "down") == 0
    assert f"stopped the stack in {home}" in capsys.readouterr().out
    assert ketenbus(home, "status") == 1
    assert "ketenbus status: no stack running" in capsys.readouterr().err


def test_printed_urls_hide_passwords() -> None:
    from ketenbus.devstack.cli import _shown

    assert (
        _shown("mongodb://app:s3cret@db:27017/?tls=true") == "mongodb://app:***@db:27017/?tls=true"
    )
    assert _shown("127.0.0.1:9092") == "127.0.0.1:9092"
