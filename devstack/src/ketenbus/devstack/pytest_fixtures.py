"""pytest fixtures that run the embedded stack for tests; import them into a conftest.py:

    from ketenbus.devstack.pytest_fixtures import (  # noqa: F401
        chain, kafka, kafka_bootstrap, mongo_url, partner_organisations, stack_home,
    )

- `stack_home` (session): a temporary directory for the session's servers and logs.
- `partner_organisations` (session): organisation ids whose partner topics are created and
  whose keys the services get: the demo's Kafka partners (access.KAFKA_PARTNERS); override it
  in a conftest for others.
- `kafka` (session): an Apache Kafka broker (ketenbus.devstack.kafka_server) with every known
  topic, user and ACL created, as a KafkaAccess: `kafka.client_options()` connects an aiokafka
  client as the operator, `kafka.client_options("partner-<org>")` as a partner; or the
  caller's KAFKA_BOOTSTRAP_SERVERS and KAFKA_* settings when set (then only the topics are
  created).
- `kafka_bootstrap` (session): its bootstrap address.
- `mongo_url` (session): a SecantusDB (secantusd-rs); or the caller's MONGODB_URL when set.
- With KETENBUS_TEST_ENGINES=testcontainers (a machine with Docker), `kafka` and `mongo_url`
  come from containers instead (ketenbus.devstack.containers).
- `chain` (per test): a factory, `chain(services=(), **options) -> EmbeddedStack`, giving a
  stack on the session's servers with its own mail and SMS sinks, for starting services.

Every process a fixture starts is stopped when the fixture ends, also when the test failed,
and dies with the test process if that is killed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import pytest

from ketenbus.devstack import access, containers, engines, kafka_provisioning, kafka_server
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.mongo_server import start_mongo
from ketenbus.devstack.processes import RunningProcess
from ketenbus.devstack.stack import EmbeddedStack

_chain_numbers = itertools.count(1)
T = TypeVar("T")


class ChainFactory(Protocol):
    def __call__(
        self,
        services: Iterable[str] = (),
        *,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        isolated: bool = False,
        isolate_databases: bool = True,
        **stack_options: Any,
    ) -> EmbeddedStack: ...


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ketenbus-stack")


@pytest.fixture(scope="session")
def partner_organisations() -> list[str]:
    # The demo's Kafka partners: their topics exist and intake and trajectory read them.
    return list(access.KAFKA_PARTNERS)


class _SharedServer(Generic[T]):
    """One server for the whole test process, however many conftest.py files import these
    fixtures (each import is a fixture of its own to pytest, and would start its own server,
    in a stack_home of its own): the first starts it, every other gets the same one."""

    def __init__(self) -> None:
        self.served: tuple[T, list[RunningProcess]] | None = None
        self.users = 0

    @contextlib.contextmanager
    def used(self, start: Callable[[], tuple[T, list[RunningProcess]]]) -> Iterator[T]:
        if self.served is None:
            engines.install()
            self.served = start()
        self.users += 1
        try:
            yield self.served[0]
        finally:
            self.users -= 1
            if self.users == 0:
                _, processes = self.served
                self.served = None
                for process in processes:
                    process.stop()


_session_kafka: _SharedServer[KafkaAccess] = _SharedServer()
_session_mongo: _SharedServer[str] = _SharedServer()


@pytest.fixture(scope="session")
def kafka(stack_home: Path, partner_organisations: list[str]) -> Iterator[KafkaAccess]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        access = KafkaAccess.from_environment(external)
        kafka_provisioning.provision(access, partner_organisations)
        yield access
        return
    if containers.wanted():
        with containers.kafka_container() as bootstrap:
            access = KafkaAccess(bootstrap)  # PLAINTEXT, no users of ours
            kafka_provisioning.provision(access, partner_organisations)
            yield access
        return

    def start() -> tuple[KafkaAccess, list[RunningProcess]]:
        cluster, nodes = kafka_server.start_cluster(
            stack_home / "kafka",
            stack_home / "logs",
            partners=partner_organisations,
            outlive_caller=False,
        )
        return cluster.access(), nodes

    with _session_kafka.used(start) as access:
        kafka_provisioning.provision(access, partner_organisations)
        yield access


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: KafkaAccess) -> str:
    return kafka.bootstrap


@pytest.fixture(scope="session")
def mongo_url(stack_home: Path) -> Iterator[str]:
    external = os.environ.get("MONGODB_URL")
    if external:
        yield external
        return
    if containers.wanted():
        with containers.mongo_container() as url:
            yield url
        return

    def start() -> tuple[str, list[RunningProcess]]:
        logs = stack_home / "logs"
        server = start_mongo(stack_home / "mongo", logs / "mongo.log", outlive_caller=False)
        return server.url, [server]

    with _session_mongo.used(start) as url:
        yield url


@pytest.fixture
def chain(
    tmp_path: Path, kafka: KafkaAccess, mongo_url: str, partner_organisations: list[str]
) -> Iterator[ChainFactory]:
    """Factory for EmbeddedStacks on the session's Kafka and Mongo.

    chain(["intake", "trajectory"]) starts the mail and SMS sinks and those services, and
    returns once every one answers /readyz. Options:
    - extra_env: environment for the services started here;
    - isolated=True: own Kafka and Mongo servers for this stack (clean topics and offsets;
      about ten seconds more);
    - isolate_databases=True (default): each service gets the database
      `chain<N>_<service>` (see EmbeddedStack.database_name), so tests sharing the session's
      Mongo do not see each other's data;
    - any EmbeddedStack option (service_module, service_env, log_level, brokers=3,
      replicas=2, ...).
    Consumer groups and topics are shared with earlier tests unless isolated=True.
    """
    stacks: list[EmbeddedStack] = []

    def make(
        services: Iterable[str] = (),
        *,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        isolated: bool = False,
        isolate_databases: bool = True,
        **stack_options: Any,
    ) -> EmbeddedStack:
        number = next(_chain_numbers)
        options: dict[str, Any] = {
            "partners": partner_organisations,
            "outlive_caller": False,
            **stack_options,
        }
        if not isolated:
            options.setdefault("kafka", kafka)
            options.setdefault("mongo_url", mongo_url)
        if isolate_databases:
            options.setdefault("database_prefix", f"chain{number}")
        stack = EmbeddedStack(tmp_path / f"chain-{number}", **options)
        stacks.append(stack)
        stack.start_infrastructure(timeout=timeout)
        names = list(services)
        if names:
            stack.start_services(names, extra_env)
            replicas = [replica for name in names for replica in stack.replicas_of(name)]
            stack.wait_ready(replicas, timeout=timeout)
        return stack

    try:
        yield make
    finally:
        errors = []
        for stack in reversed(stacks):
            try:
                stack.stop()
            except Exception as error:  # stop the others anyway
                errors.append(error)
        if errors:
            raise errors[0]
