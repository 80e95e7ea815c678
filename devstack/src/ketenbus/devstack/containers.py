"""Kafka and MongoDB from testcontainers, for the test fixtures on a machine with Docker.

`KETENBUS_TEST_ENGINES=testcontainers` makes the session fixtures (`kafka`, `mongo_url`) take
their servers from these containers instead of the native engines; the chain tests then run
against them unchanged. The images are pinned. The container Kafka listens in PLAINTEXT and
knows none of the stack's users, so the tests of Kafka security skip there (they need the
native broker, which `make test` runs). Without a Docker engine (the project's machines have
none) the setting fails at once, saying so.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ketenbus.devstack.errors import StartFailed

VARIABLE = "KETENBUS_TEST_ENGINES"
# Confluent's image is the one testcontainers' Kafka module drives; 7.9 is Apache Kafka 3.9.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.1"
MONGO_IMAGE = "mongo:8.0.4"


def wanted() -> bool:
    choice = os.environ.get(VARIABLE, "native")
    if choice not in ("native", "testcontainers"):
        raise StartFailed(f"{VARIABLE}={choice!r}: expected native or testcontainers")
    return choice == "testcontainers"


@contextlib.contextmanager
def kafka_container() -> Iterator[str]:
    """A KRaft Kafka in a container; yields its bootstrap address."""
    from testcontainers.kafka import KafkaContainer

    with _docker_needed(), KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@contextlib.contextmanager
def mongo_container() -> Iterator[str]:
    """A one-node replica set (transactions need one) in a container; yields its URL."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(MONGO_IMAGE).with_command("--replSet rs0 --bind_ip_all")
    with _docker_needed(), container.with_exposed_ports(27017) as mongo:
        wait_for_logs(mongo, "Waiting for connections")
        host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
        # The member must be known by the address clients use, or they cannot find it.
        mongo.exec(
            [
                "mongosh",
                "--quiet",
                "--eval",
                "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]})",
            ]
        )
        yield f"mongodb://{host}:{port}/?directConnection=true"


@contextlib.contextmanager
def _docker_needed() -> Iterator[None]:
    try:
        import docker

        docker.from_env().ping()
    except Exception as error:
        raise StartFailed(
            f"{VARIABLE}=testcontainers needs a Docker engine, and none answers "
            f"({type(error).__name__}); unset it to run the native engines"
        ) from error
    yield
