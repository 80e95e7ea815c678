"""The whole chain on one machine: the one place that knows how to run Ketenbus locally.

An EmbeddedStack lives in a home directory:

    <home>/stack.json     pids, ports and URLs of the running stack (for later CLI calls)
    <home>/secrets.env    the services' keys (0600), kept because the Mongo data is kept
    <home>/kafka/         Apache Kafka: data, configuration, users (0600), the stack's CA
    <home>/mongo/         SecantusDB data (secantusd-rs)
    <home>/mail/          every mail the services sent, one .eml file each
    <home>/sms/           every SMS the services sent (messages.jsonl, attempts.jsonl)
    <home>/logs/<name>.log

The infrastructure (Apache Kafka, SecantusDB, mail and SMS sinks) is started first; each service is
then its own process, `python -m ketenbus.<name>`, configured only through environment
variables, exactly as it would be in a container. When the caller's environment has
KAFKA_BOOTSTRAP_SERVERS or MONGODB_URL, those servers are used instead of starting our own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from ketenbus.contracts import access as contracts_access
from ketenbus.devstack import (
    access,
    engines,
    kafka_access,
    kafka_provisioning,
    kafka_server,
    mail_sink,
    partner_keys,
    ports,
    service_keys,
    sms_sink,
    stack_state,
)
from ketenbus.devstack.errors import (
    NotReady,
    StackAlreadyRunning,
    StackError,
    StackNotRunning,
    StartFailed,
)
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.mongo_server import begin_mongo
from ketenbus.devstack.processes import PendingStart, ProcessRef, log_tail, spawn
from ketenbus.devstack.stack_state import Component, StackState

SERVICES: tuple[str, ...] = ("intake", "trajectory", "notifications", "learning", "analytics")
INFRASTRUCTURE: tuple[str, ...] = ("kafka", "kafka-2", "kafka-3", "mongo", "mail", "sms")
# `ketenbus up --brokers 3` or this setting: three Kafka brokers, for failure tests.
BROKERS_VARIABLE = "KETENBUS_KAFKA_BROKERS"
# `ketenbus up --replicas 2` or this setting: every service as that many processes.
REPLICAS_VARIABLE = "KETENBUS_REPLICAS"
# Stable, memorable ports for people running `ketenbus up`; tests always take free ports.
PREFERRED_HTTP_PORTS: dict[str, int] = {
    "intake": 8001,
    "trajectory": 8002,
    "notifications": 8003,
    "learning": 8004,
    "analytics": 8005,
}
# Replica n of a service listens on its preferred port + (n - 1) * this: 8011 for intake-2.
REPLICA_PORT_STEP = 10
_TERMINATING = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGABRT}
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
# Settings the stack decides per home; a caller's KETENBUS_* variables do not override them.
_HOME_SETTINGS = {"KETENBUS_HOME", "KETENBUS_MASTER_KEY"}
_DEFAULT_PORTS = {"mongodb": 27017, "smtp": 25, "": 9092}


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    kind: str
    pid: int | None
    alive: bool
    ready: bool
    url: str
    external: bool


class EmbeddedStack:
    """Apache Kafka, MongoDB (SecantusDB), mail and SMS sinks, and the five services.

    A second instance on the same home (e.g. a later `ketenbus down`) finds the running stack
    through `<home>/stack.json`; every operation reads that file first, so several instances
    may act on one stack.
    """

    def __init__(
        self,
        home: Path | str,
        *,
        kafka: KafkaAccess | None = None,
        mongo_url: str | None = None,
        partners: Sequence[str] = (),
        brokers: int | None = None,
        replicas: int | None = None,
        service_module: str = "ketenbus.{name}",
        service_env: Mapping[str, str] | None = None,
        preferred_ports: bool = False,
        log_level: str = "INFO",
        database_prefix: str | None = None,
        outlive_caller: bool = True,
    ) -> None:
        """
        kafka: a Kafka to use instead of starting our own, with the users to connect as
            (default: the caller's KAFKA_BOOTSTRAP_SERVERS and KAFKA_* security settings,
            else our own Apache Kafka in <home>/kafka).
        mongo_url: a MongoDB to use instead of our own (default: the caller's MONGODB_URL).
        partners: organisation ids whose partner topics and Kafka users are created up front.
        brokers: 1 (default) or 3 Kafka brokers (KETENBUS_KAFKA_BROKERS); with 3, every
            topic is replicated three times and a write needs two in-sync replicas.
        replicas: processes per service (default KETENBUS_REPLICAS, else 1): the first is
            named after the service (`intake`), the others `intake-2`, ...; each has its own
            HTTP port and log, all share the service's database and consumer group.
        service_module: module run for a service, `{name}` is replaced by the service name
            (tests point it at a fake).
        service_env: extra environment for every service process.
        preferred_ports: try 8001-8005 for the services first (the CLI); else any free port.
        database_prefix: give each service the database `<prefix>_<name>` (MONGODB_DATABASE),
            so stacks sharing one Mongo server (tests) do not see each other's data.
        outlive_caller: False makes every process die with the calling process (tests).
        """
        self.home = Path(home).resolve()
        environment_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self._external_kafka = kafka or (
            KafkaAccess.from_environment(environment_kafka) if environment_kafka else None
        )
        self.brokers = brokers or int(os.environ.get(BROKERS_VARIABLE, "1"))
        self.replicas = replicas or int(os.environ.get(REPLICAS_VARIABLE, "1"))
        if self.replicas < 1:
            raise StackError(f"a service needs at least one replica, not {self.replicas}")
        self._external_mongo = mongo_url or os.environ.get("MONGODB_URL")
        self.partners = list(partners)
        self.service_module = service_module
        self.service_env = dict(service_env or {})
        self.preferred_ports = preferred_ports
        self.log_level = log_level
        self.database_prefix = database_prefix
        self.outlive_caller = outlive_caller
        # The extra_env a service was last started with, so restart_service starts it the
        # same way. Only known to the instance that started it.
        self._service_extra_env: dict[str, dict[str, str]] = {}

    # ----------------------------------------------------------------- where things are

    @property
    def state_path(self) -> Path:
        return self.home / stack_state.FILE_NAME

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def mail_dir(self) -> Path:
        return self.home / "mail"

    @property
    def sms_dir(self) -> Path:
        return self.home / "sms"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def mongo_dir(self) -> Path:
        return self.home / "mongo"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 20) -> str:
        return log_tail(self.log_path(name), lines)

    @property
    def kafka_bootstrap(self) -> str:
        return self._running_state().kafka_bootstrap

    @property
    def kafka(self) -> KafkaAccess:
        """The stack's Kafka, and the users to connect as (kafka.client_options(user))."""
        return self._running_state().kafka()

    @property
    def mongo_url(self) -> str:
        return self._running_state().mongo_url

    @property
    def smtp_port(self) -> int:
        port = self._component("mail").port
        assert port is not None
        return port

    @property
    def sms_url(self) -> str:
        return self._component("sms").url

    def service_url(self, name: str) -> str:
        """The address of one process: `intake` is the service's first replica."""
        return self._component(name).url

    def service_urls(self, service: str) -> list[str]:
        """The address of every replica of the service, the first replica's first."""
        state = self._running_state()
        return [state.components[name].url for name in self.replicas_of(service)]

    def replica_urls(self) -> dict[str, list[str]]:
        """Every service's replicas' addresses (ChainClient spreads its calls over them)."""
        state = self._running_state()
        services = {c.service or c.name for c in state.components.values() if c.kind == "service"}
        return {service: self.service_urls(service) for service in sorted(services)}

    def replicas_of(self, service: str) -> list[str]:
        """The names of the service's processes in the stack: `intake`, `intake-2`, ..."""
        state = self._load()
        if state is None:
            return []
        return [
            c.name
            for c in state.components.values()
            if c.kind == "service" and (c.service or c.name) == service
        ]

    def database_name(self, service: str) -> str:
        """The Mongo database the service uses (the kit's default unless a prefix is set)."""
        if self.database_prefix:
            return f"{self.database_prefix}_{service}"
        return f"ketenbus_{service}"

    def mailbox(self) -> list[EmailMessage]:
        """Every mail the services sent so far (email.message.EmailMessage), oldest first."""
        return mail_sink.read_mailbox(self.mail_dir)

    def sms_messages(self) -> list[dict[str, Any]]:
        """Every SMS the services delivered so far, oldest first."""
        return sms_sink.read_sms(self.sms_dir)

    def api_token(self, organisation: str, role: str) -> str:
        """The API key an organisation uses in a role (see ketenbus.devstack.access)."""
        return access.token(self.home, organisation, role)

    # ----------------------------------------------------------------- state

    def _load(self) -> StackState | None:
        return stack_state.load(self.home)

    def _running_state(self) -> StackState:
        state = self._load()
        if state is None:
            raise StackNotRunning(f"no stack is running in {self.home} (run `ketenbus up`)")
        return state

    def _component(self, name: str) -> Component:
        component = self._running_state().components.get(name)
        if component is None:
            raise StackNotRunning(f"{name} is not part of the stack running in {self.home}")
        return component

    def is_running(self) -> bool:
        """Whether any process of a stack in this home is alive."""
        state = self._load()
        return state is not None and bool(state.alive_components())

    # ----------------------------------------------------------------- infrastructure

    def start_infrastructure(self, timeout: float = 60.0) -> None:
        """Start Kafka and Mongo (unless external), the mail and SMS sinks, and create topics.

        Refuses when a stack is already alive in this home: two stacks would share the Mongo
        data directory and each other's stack.json.
        """
        with stack_state.locked(self.home):
            existing = self._load()
            if existing is not None:
                alive = existing.alive_components()
                if alive:
                    pids = ", ".join(f"{c.name}={c.pid}" for c in alive)
                    raise StackAlreadyRunning(
                        f"a stack is already running in {self.home} ({pids}); "
                        "stop it first with `ketenbus down`"
                    )
                stack_state.remove(self.home)  # left over from a stack that died
            for directory in (self.logs_dir, self.mail_dir, self.sms_dir):
                directory.mkdir(parents=True, exist_ok=True)
            engines.install()  # the first time on a machine: Maven and cargo, with progress
            service_keys.load_or_create(self.home)  # fail now, not at the first service start
            access.provision(self.home)

            # All four boot in parallel; each is then awaited in turn.
            pending: list[PendingStart] = []
            try:
                state = StackState(
                    home=str(self.home), kafka_bootstrap="", mongo_url="", partners=self.partners
                )
                if self._external_kafka is not None:
                    state.kafka_bootstrap = self._external_kafka.bootstrap
                    if self._external_kafka.directory is not None:
                        state.kafka_directory = str(self._external_kafka.directory)
                    state.components["kafka"] = Component(
                        "kafka", "kafka", state.kafka_bootstrap, external=True
                    )
                else:
                    cluster = kafka_server.prepare(
                        self.kafka_dir, brokers=self.brokers, partners=self.partners
                    )
                    state.kafka_bootstrap = cluster.bootstrap
                    state.kafka_directory = str(self.kafka_dir)
                    pending += kafka_server.begin_cluster(
                        cluster,
                        self.logs_dir,
                        timeout=max(timeout, 90.0),
                        outlive_caller=self.outlive_caller,
                    )
                if self._external_mongo:
                    state.mongo_url = self._external_mongo
                    state.components["mongo"] = Component(
                        "mongo", "mongo", self._external_mongo, external=True
                    )
                else:
                    pending.append(
                        begin_mongo(
                            self.mongo_dir,
                            self.log_path("mongo"),
                            timeout=timeout,
                            outlive_caller=self.outlive_caller,
                        )
                    )
                pending.append(
                    mail_sink.begin_mail_sink(
                        self.mail_dir,
                        self.log_path("mail"),
                        timeout=timeout,
                        outlive_caller=self.outlive_caller,
                    )
                )
                pending.append(
                    sms_sink.begin_sms_sink(
                        self.sms_dir,
                        self.log_path("sms"),
                        timeout=timeout,
                        outlive_caller=self.outlive_caller,
                    )
                )
                for start in pending:
                    process = start.wait()
                    state.components[process.name] = Component(
                        name=process.name,
                        kind="kafka" if process.name.startswith("kafka") else process.name,
                        url=process.url,
                        port=process.port,
                        pid=process.ref.pid,
                        started=process.ref.started,
                        log=str(process.log_path),
                    )
                    if process.name == "mongo":
                        state.mongo_url = process.url
                # Also on an external Kafka: the topics must exist with the registry's
                # partition counts before any service produces to them.
                kafka_provisioning.provision(
                    state.kafka(),
                    self.partners,
                    request_timeout=max(timeout, 30.0),
                )
                stack_state.save(self.home, state)
            except BaseException:
                for start in reversed(pending):
                    start.abandon()
                raise

    # ----------------------------------------------------------------- services

    def service_environment(
        self, name: str, extra_env: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment a service process gets: the settings contract of ketenbus.kit.

        Precedence, lowest first: the caller's environment, the stack's settings, the caller's
        KETENBUS_* variables (clock settings travel this way; not the home or its master key),
        the stack-wide service_env, then this start's extra_env.
        """
        state = self._running_state()
        component = state.components.get(name)
        http_port = component.port if component is not None else None
        # A replica (intake-2) is configured as its service, on a port of its own.
        if component is not None and component.service is not None:
            name = component.service
        mail = state.components.get("mail")
        sms = state.components.get("sms")
        if mail is None or sms is None:
            raise StackNotRunning(f"infrastructure of {self.home} is not running")
        env = dict(os.environ)
        env.update(
            {
                **self._kafka_environment(state, name),
                "MONGODB_URL": state.mongo_url,
                "HTTP_HOST": ports.LOOPBACK,
                "SMTP_HOST": ports.LOOPBACK,
                "SMTP_PORT": str(mail.port),
                "SMS_PROVIDER_URL": sms.url,
                "KETENBUS_HOME": str(self.home),
                "LOG_LEVEL": self.log_level,
                # Log lines reach the log file when written, not when a buffer fills.
                "PYTHONUNBUFFERED": "1",
                **service_keys.load_or_create(self.home),
                "API_KEYS_FILE": str(access.provision(self.home)),
                # The partners whose topics exist, and the key each shares with the chain.
                "PARTNER_ORGANISATIONS": ",".join(state.partners),
                "PARTNER_SHARING_KEYS": json.dumps(
                    partner_keys.load_or_create(self.home, state.partners)
                ),
                # Locally the follow-up after a missed appointment comes in seconds, not hours.
                "MISSED_FOLLOW_UP_DELAY": "PT5S",
            }
        )
        if http_port is not None:
            env["HTTP_PORT"] = str(http_port)
        if self.database_prefix:
            env["MONGODB_DATABASE"] = self.database_name(name)
        env.update(
            {
                key: value
                for key, value in os.environ.items()
                if key.startswith("KETENBUS_") and key not in _HOME_SETTINGS
            }
        )
        env.update(self.service_env)
        env.update(extra_env or {})
        return env

    def _kafka_environment(self, state: StackState, name: str) -> dict[str, str]:
        kafka = state.kafka()
        if kafka.external:
            return kafka.service_environment("")
        # A fake service in tests (devstack/tests) connects as the operator.
        user = (
            contracts_access.service_user(name)
            if name in contracts_access.SERVICE_ACCESS
            else kafka_access.ADMIN
        )
        return kafka.service_environment(user)

    def start_service(
        self, name: str, extra_env: Mapping[str, str] | None = None, *, replica: int = 1
    ) -> int:
        """Start one process of a service (its `replica`-th, or the replica named `name`,
        e.g. `intake-2`); returns its pid. Does not wait for readiness.

        A process started again (restart) keeps its HTTP port, so its URLs stay the same.
        """
        state = self._running_state()
        known = state.components.get(name)
        if known is not None and known.service is not None:
            service, process_name = known.service, name
        else:
            service, process_name = name, replica_name(name, replica)
        if not _SERVICE_NAME.match(service) or service in INFRASTRUCTURE:
            raise StackError(f"not a service name: {service!r}")
        if "mail" not in state.components or not state.components["mail"].alive():
            raise StackNotRunning(
                f"the infrastructure of {self.home} is not running; start it first"
            )
        previous = state.components.get(process_name)
        if previous is not None and previous.alive():
            raise StackError(f"{process_name} is already running (pid {previous.pid})")
        if previous is not None and previous.port is not None:
            port = previous.port
        elif self.preferred_ports and service in PREFERRED_HTTP_PORTS:
            preferred = PREFERRED_HTTP_PORTS[service] + (replica - 1) * REPLICA_PORT_STEP
            port = ports.preferred_or_free(preferred)
        else:
            port = ports.free_port()
        state.components[process_name] = Component(
            process_name,
            "service",
            f"http://{ports.LOOPBACK}:{port}",
            port=port,
            log=None,
            service=service if process_name != service else None,
        )
        stack_state.save(self.home, state)

        self._service_extra_env[process_name] = dict(extra_env or {})
        env = self.service_environment(process_name, extra_env)
        module = self.service_module.format(name=service)
        process = spawn(
            [sys.executable, "-m", module],
            log_path=self.log_path(process_name),
            env=env,
            outlive_caller=self.outlive_caller,
        )
        component = state.components[process_name]
        component.pid = process.pid
        component.started = process.started
        component.log = str(self.log_path(process_name))
        stack_state.save(self.home, state)
        return process.pid

    def start_replicas(self, service: str, extra_env: Mapping[str, str] | None = None) -> None:
        """Start every replica of the service: as many as it had in this stack, else
        `replicas`. All of them join the service's consumer group."""
        count = len(self.replicas_of(service)) or self.replicas
        for replica in range(1, count + 1):
            self.start_service(service, extra_env, replica=replica)

    def start_services(
        self, names: Iterable[str] = SERVICES, extra_env: Mapping[str, str] | None = None
    ) -> None:
        for name in names:
            self.start_replicas(name, extra_env)

    def service_names(self) -> list[str]:
        state = self._load()
        if state is None:
            return []
        return [c.name for c in state.components.values() if c.kind == "service"]

    def is_ready(self, name: str) -> bool:
        """Whether the service answers 200 on GET /readyz."""
        try:
            component = self._component(name)
        except StackNotRunning:
            return False
        return _answers_ready(component.url)

    def wait_ready(self, names: str | Iterable[str] | None = None, timeout: float = 60.0) -> None:
        """Wait until each service answers 200 on /readyz (default: every started service).

        Fails at once when a service process exits, and after `timeout` seconds with the name
        of the service and the end of its log.
        """
        pending = self._services_to_wait_for(names)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for component in list(pending):
                    if _answers_ready(component.url, client):
                        pending.remove(component)
                    elif not component.alive():
                        raise self._exited(component)
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    raise self._not_ready(pending[0], timeout)
                time.sleep(0.1)

    async def wait_ready_async(
        self,
        names: str | Iterable[str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        """wait_ready for async tests, so the event loop (and the test's consumers) keep running."""
        import asyncio

        pending = self._services_to_wait_for(names)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while pending:
                for component in list(pending):
                    try:
                        response = await client.get(f"{component.url}/readyz")
                        ready = response.status_code == 200
                    except httpx.HTTPError:
                        ready = False
                    if ready:
                        pending.remove(component)
                    elif not component.alive():
                        raise self._exited(component)
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    raise self._not_ready(pending[0], timeout)
                await asyncio.sleep(0.1)

    def _services_to_wait_for(self, names: str | Iterable[str] | None) -> list[Component]:
        if names is None:
            wanted = self.service_names()
        elif isinstance(names, str):
            wanted = [names]
        else:
            wanted = list(names)
        return [self._component(name) for name in wanted]

    def _exited(self, component: Component) -> StartFailed:
        return StartFailed(
            f"service {component.name} exited before it was ready; "
            f"last lines of {self.log_path(component.name)}:\n{self.log_tail(component.name)}"
        )

    def _not_ready(self, component: Component, timeout: float) -> NotReady:
        return NotReady(
            f"service {component.name} was not ready within {timeout:g}s "
            f"({component.url}/readyz did not answer 200); "
            f"last lines of {self.log_path(component.name)}:\n{self.log_tail(component.name)}"
        )

    def kill_service(
        self, name: str, sig: int = signal.SIGKILL, *, wait: bool | None = None
    ) -> None:
        """Send `sig` to the service (default SIGKILL: a crash, no clean shutdown).

        For signals that end a process it waits until the process is gone, so a following
        start_service finds the port free; for others (SIGSTOP, SIGCONT) it returns at once.
        """
        process = self._service_process(name)
        if process is None or not process.send(sig):
            raise StackError(f"{name} is not running")
        should_wait = wait if wait is not None else sig in _TERMINATING
        if should_wait and not process.wait_exit(10.0):
            raise StackError(f"{name} (pid {process.pid}) did not exit after signal {sig}")

    def kill_broker(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one Kafka node of the stack's own cluster (default SIGKILL: a crash)
        and wait until it is gone."""
        component = self._component(kafka_server.Node(node_id, 0, 0).name)
        process = component.process
        if process is None or not process.send(sig):
            raise StackError(f"Kafka node {node_id} is not running")
        if sig in _TERMINATING and not process.wait_exit(30.0):
            raise StackError(f"Kafka node {node_id} (pid {process.pid}) did not exit")

    def start_broker(self, node_id: int, timeout: float = 90.0) -> None:
        """Start one Kafka node again on its data (after kill_broker) and wait until it is
        ready; it catches up with the others by itself."""
        cluster = kafka_server.load(self.kafka_dir)
        node = cluster.node(node_id)
        process = kafka_server.begin_node(
            cluster,
            node,
            self.log_path(node.name),
            timeout=timeout,
            outlive_caller=self.outlive_caller,
        ).wait()
        with stack_state.locked(self.home):
            state = self._running_state()
            component = state.components[node.name]
            component.pid = process.ref.pid
            component.started = process.ref.started
            stack_state.save(self.home, state)

    def stop_service(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM, so the service can finish its work; SIGKILL after `timeout` seconds."""
        process = self._service_process(name)
        if process is not None:
            process.stop(timeout)

    def restart_service(
        self, name: str, extra_env: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> int:
        """Stop the service if it runs, start it again on the same port; returns the new pid.

        Without extra_env it gets the extra_env it was last started with (by this instance).
        """
        self.stop_service(name, timeout)
        env = extra_env if extra_env is not None else self._service_extra_env.get(name)
        return self.start_service(name, env)

    def _service_process(self, name: str) -> ProcessRef | None:
        component = self._component(name)
        if component.kind != "service":
            raise StackError(f"{name} is not a service")
        return component.process

    # ----------------------------------------------------------------- the whole stack

    def start(self, services: Iterable[str] = SERVICES, timeout: float = 60.0) -> None:
        """Infrastructure, then the services, then wait until all are ready. On failure
        everything started is stopped again."""
        self.start_infrastructure(timeout)
        try:
            self.start_services(services)
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the services (SIGTERM, SIGKILL after `timeout`), then the sinks and servers.

        Servers given from outside (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL) are left running.
        """
        state = self._load()
        if state is None:
            return
        services = [c for c in state.components.values() if c.kind == "service"]
        infrastructure = [c for c in state.components.values() if c.kind != "service"]
        # Services first: while they stop they may still flush to Kafka and Mongo.
        _stop_all(services, timeout)
        _stop_all(infrastructure, timeout)
        stack_state.remove(self.home)

    def clear_data(self) -> bool:
        """Forget every event, document, mail, SMS and report of this stopped stack, so its next
        start begins on an empty chain; say whether there was anything. Keys, users and
        certificates stay. Servers given from outside keep their data: not the stack's to clear."""
        if self.is_running():
            raise StackAlreadyRunning(f"a stack is running in {self.home}; stop it first")
        kept = [self.mail_dir, self.sms_dir, self.reports_dir]
        if not self._external_mongo:
            kept.append(self.mongo_dir)
        found = any(directory.exists() for directory in kept)
        if self._external_kafka is None:
            found = kafka_server.clear_storage(self.kafka_dir) or found
        for directory in kept:
            shutil.rmtree(directory, ignore_errors=True)
        return found

    def urls(self) -> dict[str, str]:
        """Every address of the running stack by name: `<service>`, `<service>.metrics`,
        `<service>.asyncapi`, `<service>.docs`, `kafka`, `mongo`, `mail`, `mail.dir`, `sms`,
        `sms.dir`."""
        state = self._running_state()
        urls: dict[str, str] = {}
        for component in state.components.values():
            if component.kind == "service":
                urls[component.name] = component.url
                for page in ("metrics", "asyncapi", "docs"):
                    urls[f"{component.name}.{page}"] = f"{component.url}/{page}"
        urls["kafka"] = state.kafka_bootstrap
        urls["mongo"] = state.mongo_url
        if "mail" in state.components:
            urls["mail"] = state.components["mail"].url
            urls["mail.dir"] = str(self.mail_dir)
        if "sms" in state.components:
            urls["sms"] = state.components["sms"].url
            urls["sms.dir"] = str(self.sms_dir)
        return urls

    def status(self) -> list[ComponentStatus]:
        """Each component: pid, whether its process lives, whether it answers."""
        state = self._load()
        if state is None:
            return []
        statuses = []
        with httpx.Client(timeout=1.0) as client:
            for c in state.components.values():
                alive = c.external or c.alive()
                if c.kind == "service":
                    ready = alive and _answers_ready(c.url, client)
                elif c.kind == "sms":
                    ready = alive and c.port is not None and sms_sink.is_healthy(c.port)
                else:
                    ready = alive and _reachable(c.url)
                statuses.append(
                    ComponentStatus(c.name, c.kind, c.pid, alive, ready, c.url, c.external)
                )
        return statuses

    def __enter__(self) -> EmbeddedStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def replica_name(service: str, replica: int) -> str:
    """`intake` for the first replica, `intake-2` for the second, like the Kafka nodes."""
    return service if replica == 1 else f"{service}-{replica}"


def _stop_all(components: list[Component], timeout: float) -> None:
    """SIGTERM to all at once (they stop in parallel), SIGKILL to whoever is left at the end."""
    processes = [c.process for c in components if not c.external and c.process is not None]
    running = [p for p in processes if p.send(signal.SIGTERM)]
    deadline = time.monotonic() + timeout
    for process in running:
        if not process.wait_exit(max(0.0, deadline - time.monotonic())):
            process.stop(timeout=0.0)  # goes straight to SIGKILL


def _answers_ready(base_url: str, client: httpx.Client | None = None) -> bool:
    try:
        if client is None:
            response = httpx.get(f"{base_url}/readyz", timeout=1.0)
        else:
            response = client.get(f"{base_url}/readyz")
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _reachable(url: str) -> bool:
    """Whether the first address of a Kafka bootstrap list, a mongodb:// or smtp:// URL
    accepts TCP connections."""
    scheme, _, rest = url.rpartition("://")
    first = rest.split(",")[0].split("/")[0]
    try:
        parts = urlsplit(f"tcp://{first}")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return False
    if parts.hostname is None or port is None:
        return False
    return ports.accepts_connections(port, host=parts.hostname)
