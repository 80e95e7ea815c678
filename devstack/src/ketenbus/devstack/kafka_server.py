"""Apache Kafka for local runs: the real broker in KRaft mode, secured as in production.

A cluster lives in one directory (the stack's `<home>/kafka`):

    cluster.json          cluster id, and each node's ports (kept, so a restart keeps them)
    users.json            SCRAM passwords per user (0600; ketenbus.devstack.kafka_access)
    tls/                  the stack's CA and the brokers' certificate (kafka_tls)
    log4j2.properties     broker logging, to the node's log file
    node-<id>/server.properties, node-<id>/data/   configuration and storage of each node

Each node is broker and controller at once. Clients (services, partners, the operator) use
the listener CLIENTS: SASL_SSL with SCRAM-SHA-512; the brokers also talk to each other there,
as `ketenbus-admin`. Controllers talk over CONTROLLER: TLS with client certificates, the
brokers' certificate (principal `kafka-broker`). The StandardAuthorizer refuses whatever no
ACL allows; only the two principals above are super users. Topics are never created
automatically. Storage is formatted once, with the admin user's SCRAM credential (the other
users are made through the Admin API afterwards, ketenbus.devstack.kafka_provisioning), and
kept: a restart keeps every topic, offset, user and ACL.

With `brokers=3` there are three nodes, replication factor 3 and min.insync.replicas 2, for
failure tests: one node can be lost without losing an acknowledged event or stopping writes.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ketenbus.devstack import engines, kafka_access, kafka_tls, ports
from ketenbus.devstack.errors import StartFailed
from ketenbus.devstack.kafka_access import ADMIN, KafkaAccess
from ketenbus.devstack.private_files import write_private
from ketenbus.devstack.processes import PendingStart, RunningProcess

READY_LINE = "Kafka Server started"
# A development broker: a heap that is enough (Kafka's scripts default to 1 GiB) and the serial
# collector. A broker that lives for seconds (the storage tool, each stack the test suite
# starts) also stops at the client compiler: it halves the CPU a node burns to start (16 s ->
# 8 s on a 2-core machine). One that runs a demo year or a benchmark gets hot enough for the
# optimising compiler to pay back (the broker's CPU serving the rebuild benchmark: 10-12 s
# with the client compiler alone, 2-4 s without), so it keeps it.
_JVM = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC"]
_QUICK_START = [*_JVM, "-XX:TieredStopAtLevel=1"]
# Set (to 1) by the test suite: its brokers live for one test file each.
QUICK_START_VARIABLE = "KETENBUS_KAFKA_QUICK_START"


def _broker_jvm() -> list[str]:
    return _QUICK_START if os.environ.get(QUICK_START_VARIABLE) == "1" else _JVM


_LOG4J = """\
# Written by ketenbus.devstack: broker logs to standard output, which is the node's log file.
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.state.name=state.change.logger
logger.state.level=WARN
"""


@dataclass(frozen=True, slots=True)
class Node:
    id: int
    port: int
    controller_port: int

    @property
    def name(self) -> str:
        return "kafka" if self.id == 1 else f"kafka-{self.id}"


@dataclass(frozen=True, slots=True)
class Cluster:
    """A cluster's directory and the facts that must stay the same across restarts."""

    directory: Path
    cluster_id: str
    nodes: tuple[Node, ...]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{ports.LOOPBACK}:{node.port}" for node in self.nodes)

    @property
    def replication(self) -> int:
        return len(self.nodes)

    def node(self, node_id: int) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise StartFailed(f"the Kafka cluster in {self.directory} has no node {node_id}")

    def node_directory(self, node: Node) -> Path:
        return self.directory / f"node-{node.id}"

    def access(self) -> KafkaAccess:
        return KafkaAccess(self.bootstrap, self.directory)


def prepare(directory: Path, *, brokers: int = 1, partners: Sequence[str] = ()) -> Cluster:
    """The cluster in `directory`, made on first use: TLS, users, configuration, storage."""
    if brokers not in (1, 3):
        raise StartFailed(f"the stack runs 1 or 3 Kafka brokers, not {brokers}")
    directory.mkdir(parents=True, exist_ok=True)
    cluster = _load_or_create_cluster(directory, brokers)
    tls = kafka_tls.load_or_create(directory / "tls")
    users = kafka_access.load_or_create_users(directory, kafka_access.wanted_users(partners))
    (directory / "log4j2.properties").write_text(_LOG4J, encoding="utf-8")
    unformatted: list[subprocess.Popen[bytes]] = []
    for node in cluster.nodes:
        node_dir = cluster.node_directory(node)
        node_dir.mkdir(exist_ok=True)
        properties = node_dir / "server.properties"
        write_private(properties, _server_properties(cluster, node, tls, users[ADMIN]))
        if not (node_dir / "data" / "meta.properties").exists():
            unformatted.append(_format(cluster, properties, users[ADMIN]))
    for formatting in unformatted:  # the nodes format in parallel: a JVM start each
        output, _ = formatting.communicate(timeout=120)
        if formatting.returncode != 0:
            raise StartFailed(f"formatting Kafka storage failed:\n{output.decode()[-2000:]}")
    return cluster


def clear_storage(directory: Path) -> bool:
    """Forget every record of the stopped cluster in `directory`, saying whether it held any:
    the next `prepare` formats empty storage. The users and ACLs live in the cluster's
    metadata, so the record of what was applied goes too; TLS files and passwords stay."""
    stores = [store for store in directory.glob("node-*/data") if store.is_dir()]
    for store in stores:
        shutil.rmtree(store)
    (directory / "applied.sha256").unlink(missing_ok=True)
    return bool(stores)


def begin_node(
    cluster: Cluster,
    node: Node,
    log_path: Path,
    *,
    timeout: float = 90.0,
    outlive_caller: bool = True,
) -> PendingStart:
    """Start one node; `url` of the result is the whole cluster's bootstrap address."""
    properties = cluster.node_directory(node) / "server.properties"
    argv = [
        engines.java_binary(),
        *_broker_jvm(),
        f"-Dlog4j2.configurationFile={cluster.directory / 'log4j2.properties'}",
        "-cp",
        engines.kafka_classpath(),
        "kafka.Kafka",
        str(properties),
    ]
    return PendingStart(
        node.name,
        lambda _port: argv,
        log_path=log_path,
        ready=ports.accepts_connections,
        url_for=lambda _port: cluster.bootstrap,
        ready_line=READY_LINE,
        port=node.port,
        timeout=timeout,
        outlive_caller=outlive_caller,
    )


def begin_cluster(
    cluster: Cluster, logs_dir: Path, *, timeout: float = 90.0, outlive_caller: bool = True
) -> list[PendingStart]:
    return [
        begin_node(
            cluster,
            node,
            logs_dir / f"{node.name}.log",
            timeout=timeout,
            outlive_caller=outlive_caller,
        )
        for node in cluster.nodes
    ]


def start_cluster(
    directory: Path,
    logs_dir: Path,
    *,
    brokers: int = 1,
    partners: Sequence[str] = (),
    timeout: float = 90.0,
    outlive_caller: bool = True,
) -> tuple[Cluster, list[RunningProcess]]:
    """prepare(), start every node and wait until each is ready."""
    cluster = prepare(directory, brokers=brokers, partners=partners)
    pending = begin_cluster(cluster, logs_dir, timeout=timeout, outlive_caller=outlive_caller)
    try:
        return cluster, [start.wait() for start in pending]
    except BaseException:
        for start in pending:
            start.abandon()
        raise


# ----------------------------------------------------------------------------- internals


def load(directory: Path) -> Cluster:
    """The cluster made in `directory` before (by prepare)."""
    path = directory / "cluster.json"
    if not path.exists():
        raise StartFailed(f"no Kafka cluster has been made in {directory}")
    recorded = json.loads(path.read_text("utf-8"))
    nodes = tuple(Node(**node) for node in recorded["nodes"])
    return Cluster(directory, recorded["cluster_id"], nodes)


def _load_or_create_cluster(directory: Path, brokers: int) -> Cluster:
    if (directory / "cluster.json").exists():
        cluster = load(directory)
        if len(cluster.nodes) != brokers:
            raise StartFailed(
                f"the Kafka data in {directory} belongs to a cluster of {len(cluster.nodes)} "
                f"broker(s), not {brokers}; remove it or start with that many"
            )
        busy = [
            n for n in cluster.nodes for p in (n.port, n.controller_port) if not ports.is_free(p)
        ]
        if busy:
            raise StartFailed(
                f"port {busy[0].port} or {busy[0].controller_port} of Kafka node {busy[0].id} "
                f"({directory}) is in use; stop whatever holds it"
            )
        return cluster
    chosen = [ports.free_port() for _ in range(2 * brokers)]
    nodes = tuple(
        Node(number + 1, chosen[2 * number], chosen[2 * number + 1]) for number in range(brokers)
    )
    cluster = Cluster(directory, _cluster_id(), nodes)
    (directory / "cluster.json").write_text(
        json.dumps(
            {
                "cluster_id": cluster.cluster_id,
                "nodes": [
                    {"id": n.id, "port": n.port, "controller_port": n.controller_port}
                    for n in nodes
                ],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return cluster


def _cluster_id() -> str:
    # Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _server_properties(
    cluster: Cluster, node: Node, tls: kafka_tls.TlsFiles, admin_password: str
) -> str:
    replication = cluster.replication
    min_insync = 2 if replication >= 3 else 1
    voters = ",".join(f"{n.id}@{ports.LOOPBACK}:{n.controller_port}" for n in cluster.nodes)
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.id,
        "controller.quorum.voters": voters,
        "listeners": (
            f"CLIENTS://{ports.LOOPBACK}:{node.port},CONTROLLER://{ports.LOOPBACK}:"
            f"{node.controller_port}"
        ),
        "advertised.listeners": f"CLIENTS://{ports.LOOPBACK}:{node.port}",
        "listener.security.protocol.map": "CLIENTS:SASL_SSL,CONTROLLER:SSL",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "CLIENTS",
        # Authentication: SCRAM for clients and brokers, client certificates for controllers.
        "sasl.enabled.mechanisms": kafka_access.MECHANISM,
        "sasl.mechanism.inter.broker.protocol": kafka_access.MECHANISM,
        "listener.name.clients.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{admin_password}";'
        ),
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": tls.broker,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": tls.ca,
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        # Authorisation: only what an ACL allows (ketenbus.contracts.access).
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN};User:{kafka_tls.BROKER_PRINCIPAL}",
        # Topics are declared by the stack with their partitions and retention, never made
        # by a client that names a topic (a typo must not become a topic).
        "auto.create.topics.enable": "false",
        "log.dirs": cluster.node_directory(node) / "data",
        "default.replication.factor": replication,
        "min.insync.replicas": min_insync,
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_insync,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_insync,
        "unclean.leader.election.enable": "false",
        # A development cluster: fewer offset partitions than the 50 of production start
        # faster, and a consumer group need not wait 3 s for more members before it starts.
        "offsets.topic.num.partitions": 10,
        "group.initial.rebalance.delay.ms": 0,
        # The log cleaner looks for work every second, not every 15: the contacts topic's
        # tombstones remove a card within seconds (kafka_provisioning.QUICK_COMPACTION).
        "log.cleaner.backoff.ms": 1000,
    }
    lines = [
        "# Written by ketenbus.devstack.kafka_server at every start; edits are overwritten.",
        *(f"{key}={value}" for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


def _format(cluster: Cluster, properties: Path, admin_password: str) -> subprocess.Popen[bytes]:
    scram = f"{kafka_access.MECHANISM}=[name={ADMIN},password={admin_password}]"
    return subprocess.Popen(
        [
            engines.java_binary(),
            *_QUICK_START,
            "-cp",
            engines.kafka_classpath(),
            "kafka.tools.StorageTool",
            "format",
            # One argument: an id may begin with "-", which would read as an option.
            f"--cluster-id={cluster.cluster_id}",
            "--config",
            str(properties),
            "--add-scram",
            scram,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
