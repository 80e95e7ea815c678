"""EmbeddedStack with fake service processes on the session's Kafka and Mongo."""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from ketenbus.devstack import stack_state
from ketenbus.devstack.errors import NotReady, StackAlreadyRunning, StackNotRunning, StartFailed
from ketenbus.devstack.kafka_access import ADMIN, KafkaAccess
from ketenbus.devstack.pytest_fixtures import ChainFactory
from ketenbus.devstack.stack import EmbeddedStack
from ketenbus.devstack.waiting import wait_until

pytestmark = pytest.mark.chain


def service_env(stack: EmbeddedStack, name: str) -> dict[str, Any]:
    return httpx.get(f"{stack.service_url(name)}/env").json()


def test_a_service_gets_the_settings_contract(
    chain: ChainFactory, fake_service_options: dict[str, Any], kafka: KafkaAccess, mongo_url: str
) -> None:
    stack = chain(["intake"], extra_env={"FAKE_MARK": "x"}, **fake_service_options)

    env = service_env(stack, "intake")

    assert env["KAFKA_BOOTSTRAP_SERVERS"] == kafka.bootstrap
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_USERNAME"] == "ketenbus-intake"  # its own user, with its own ACLs
    assert env["MONGODB_URL"] == mongo_url
    assert env["MONGODB_DATABASE"] == stack.database_name("intake")
    assert env["HTTP_HOST"] == "127.0.0.1"
    assert stack.service_url("intake") == f"http://127.0.0.1:{env['HTTP_PORT']}"
    assert env["SMTP_HOST"] == "127.0.0.1"
    assert int(env["SMTP_PORT"]) == stack.smtp_port
    assert env["SMS_PROVIDER_URL"] == stack.sms_url
    assert env["KETENBUS_HOME"] == str(stack.home)
    assert env["LOG_LEVEL"] == "INFO"
    assert env["FAKE_MARK"] == "x"
    secrets = (stack.home / "secrets.env").read_text()
    for key in ("KETENBUS_MASTER_KEY", "CONTACT_SHARING_KEY", "PSEUDONYM_KEY"):
        assert f"{key}={env[key]}\n" in secrets
        assert len(env[key]) == 44  # 32 bytes, URL-safe base64


def test_the_callers_ketenbus_settings_travel_but_not_over_the_homes_own(
    chain: ChainFactory, fake_service_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETENBUS_CLOCK_SPEED", "60")
    monkeypatch.setenv("KETENBUS_HOME", "/somewhere/else")
    stack = chain(["learning"], **fake_service_options)

    env = service_env(stack, "learning")

    assert env["KETENBUS_CLOCK_SPEED"] == "60"
    assert env["KETENBUS_HOME"] == str(stack.home)


def test_keys_are_kept_private_and_stable_per_home(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(["analytics"], **fake_service_options)
    before = service_env(stack, "analytics")["KETENBUS_MASTER_KEY"]

    stack.restart_service("analytics")
    stack.wait_ready("analytics", timeout=20)

    assert service_env(stack, "analytics")["KETENBUS_MASTER_KEY"] == before
    mode = stat.S_IMODE((stack.home / "secrets.env").stat().st_mode)
    assert mode == 0o600


def test_a_killed_service_restarts_on_the_same_port(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(["trajectory"], extra_env={"FAKE_MARK": "first"}, **fake_service_options)
    url = stack.service_url("trajectory")
    first_pid = service_env(stack, "trajectory")["pid"]

    stack.kill_service("trajectory")  # SIGKILL: a crash

    assert not stack.is_ready("trajectory")
    [status] = [s for s in stack.status() if s.name == "trajectory"]
    assert (status.alive, status.ready) == (False, False)

    new_pid = stack.restart_service("trajectory")
    stack.wait_ready("trajectory", timeout=20)

    assert new_pid != first_pid
    assert stack.service_url("trajectory") == url
    env = service_env(stack, "trajectory")
    assert env["pid"] == new_pid
    assert env["FAKE_MARK"] == "first"  # restarted with the env it was started with


def test_replicas_are_processes_of_one_service_each_on_its_own_port(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(["intake"], replicas=2, extra_env={"FAKE_MARK": "x"}, **fake_service_options)

    assert stack.replicas_of("intake") == ["intake", "intake-2"]
    first, second = service_env(stack, "intake"), service_env(stack, "intake-2")
    assert stack.service_urls("intake") == [
        stack.service_url("intake"),
        stack.service_url("intake-2"),
    ]
    assert stack.replica_urls() == {"intake": stack.service_urls("intake")}
    assert first["pid"] != second["pid"] and first["HTTP_PORT"] != second["HTTP_PORT"]
    # The same service in every other respect: its Kafka user (so its consumer group), its
    # database, its keys.
    for setting in ("KAFKA_SASL_USERNAME", "MONGODB_DATABASE", "KETENBUS_MASTER_KEY", "FAKE_MARK"):
        assert first[setting] == second[setting], setting
    assert second["KAFKA_SASL_USERNAME"] == "ketenbus-intake"
    assert (stack.logs_dir / "intake-2.log").exists()

    # One replica crashes: the other goes on, and the crashed one comes back as itself.
    url = stack.service_url("intake-2")
    stack.kill_service("intake-2")
    assert stack.is_ready("intake") and not stack.is_ready("intake-2")
    new_pid = stack.restart_service("intake-2")
    stack.wait_ready("intake-2", timeout=20)
    assert stack.service_url("intake-2") == url
    assert service_env(stack, "intake-2")["pid"] == new_pid
    assert service_env(stack, "intake-2")["MONGODB_DATABASE"] == first["MONGODB_DATABASE"]


def test_wait_ready_waits_for_a_service_that_needs_time(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(**fake_service_options)
    stack.start_service("notifications", {"FAKE_READY_AFTER": "1"})

    assert not stack.is_ready("notifications")
    stack.wait_ready(timeout=20)
    assert stack.is_ready("notifications")


async def test_wait_ready_async_keeps_the_loop_running(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(**fake_service_options)
    stack.start_service("intake", {"FAKE_READY_AFTER": "0.5"})

    await stack.wait_ready_async("intake", timeout=20)

    assert stack.is_ready("intake")


def test_a_service_that_never_gets_ready_is_named_with_its_log(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(**fake_service_options)
    stack.start_service("learning", {"FAKE_READY_AFTER": "3600"})

    with pytest.raises(NotReady) as raised:
        stack.wait_ready("learning", timeout=1)

    assert "service learning was not ready within 1s" in str(raised.value)
    assert "fake service listening on" in str(raised.value)


def test_a_service_that_exits_fails_fast_with_its_log(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(**fake_service_options)
    stack.start_service("intake", {"FAKE_EXIT_CODE": "3"})

    with pytest.raises(StartFailed) as raised:
        stack.wait_ready("intake", timeout=30)

    assert "service intake exited before it was ready" in str(raised.value)
    assert "cannot connect to the broker (on purpose)" in str(raised.value)


def test_a_second_instance_finds_the_stack_and_stops_it(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(["intake", "analytics"], **fake_service_options)
    recorded = json.loads((stack.home / "stack.json").read_text())
    assert set(recorded["components"]) == {"kafka", "mongo", "mail", "sms", "intake", "analytics"}

    later = EmbeddedStack(stack.home)  # e.g. `ketenbus down` in another terminal
    assert later.is_running()
    assert later.urls() == stack.urls()
    with pytest.raises(StackAlreadyRunning, match="already running"):
        later.start_infrastructure()

    later.stop()

    assert not stack.is_running()
    assert not (stack.home / "stack.json").exists()
    with pytest.raises(StackNotRunning):
        stack.urls()


def test_the_stack_leaves_servers_it_did_not_start_running(
    chain: ChainFactory, fake_service_options: dict[str, Any], kafka: KafkaAccess
) -> None:
    stack = chain(["intake"], **fake_service_options)
    state = stack_state.load(stack.home)
    assert state is not None
    assert state.components["kafka"].external and state.components["kafka"].pid is None

    stack.stop()

    statuses = EmbeddedStack(stack.home, kafka=kafka).status()
    assert statuses == []  # nothing recorded any more
    from ketenbus.devstack.ports import accepts_connections

    assert accepts_connections(int(kafka.bootstrap.rsplit(":", 1)[1]))


def test_the_environment_points_the_stack_at_existing_servers(
    tmp_path: Path,
    fake_service_options: dict[str, Any],
    kafka: KafkaAccess,
    mongo_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Kafka from outside comes with its connection settings, as a service reads them.
    for name, value in kafka.service_environment(ADMIN).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MONGODB_URL", mongo_url)
    with EmbeddedStack(tmp_path / "home", outlive_caller=False, **fake_service_options) as stack:
        stack.start_infrastructure()
        assert stack.urls()["kafka"] == kafka.bootstrap
        assert stack.urls()["mongo"] == mongo_url
        assert [s.name for s in stack.status() if not s.external] == ["mail", "sms"]


def test_an_own_stack_starts_and_stops_its_own_servers(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(["intake"], isolated=True, **fake_service_options)
    statuses = {s.name: s for s in stack.status()}
    assert all(s.alive and s.ready and not s.external for s in statuses.values())
    refs = [c.process for c in stack_state.load(stack.home).components.values()]  # type: ignore[union-attr]

    stack.stop()

    assert not any(ref.alive() for ref in refs if ref is not None)


def test_sigstop_pauses_a_service_without_waiting_for_it_to_exit(
    chain: ChainFactory, fake_service_options: dict[str, Any]
) -> None:
    stack = chain(["analytics"], **fake_service_options)

    stack.kill_service("analytics", signal.SIGSTOP)
    assert not stack.is_ready("analytics")  # answers nothing while stopped
    stack.kill_service("analytics", signal.SIGCONT)

    wait_until(lambda: stack.is_ready("analytics"), timeout=10, what="analytics to answer again")
