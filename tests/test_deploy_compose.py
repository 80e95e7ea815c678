"""deploy/docker-compose.yml, deploy/Dockerfile, the Grafana provisioning, the Kafka set-up
(SASL_SSL listeners, SCRAM users, certificates) and the topic provisioning script: static checks
(no Docker engine needed), the scripts that make .env and the certificates run for real in a
temporary copy of deploy/, `docker compose config` where the compose plugin is installed, and
the provisioning against the embedded Kafka.

The settings the services read against what compose gives them: tests/test_deploy_settings.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ketenbus.contracts import topics
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVICES = ("intake", "trajectory", "notifications", "learning", "analytics")
# An exact version: digits and dots, optionally a `v` and a suffix such as -slim-bookworm.
PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(scope="module")
def yaml() -> ModuleType:
    return pytest.importorskip(
        "yaml",
        reason="PyYAML is not installed in the workspace: add pyyaml to the dev dependency "
        "group to parse the compose file",
    )


@pytest.fixture(scope="module")
def compose(yaml: ModuleType) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _load_script(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


provision_topics = _load_script("provision_topics", DEPLOY / "kafka" / "provision_topics.py")


# ------------------------------------------------------------------ compose


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        *SERVICES,
        "kafka",
        "kafka-topics",
        "mongodb",
        "mongodb-init",
        "prometheus",
        "alertmanager",
        "grafana",
        "mailpit",
    }


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if image.startswith("ketenbus-"):
            assert "build" in service, name
            continue
        assert PINNED.match(image), f"{name}: {image} is not pinned to a version"


def test_compose_publishes_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_compose_kafka_is_kraft_without_auto_created_topics(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in " ".join(env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_compose_mongodb_is_a_replica_set_that_is_initiated(compose: dict[str, Any]) -> None:
    mongodb = compose["services"]["mongodb"]
    assert "--replSet" in mongodb["command"]
    init = compose["services"]["mongodb-init"]
    assert init["depends_on"]["mongodb"]["condition"] == "service_healthy"
    script = (DEPLOY / "mongodb" / "init-replica-set.js").read_text(encoding="utf-8")
    assert "rs.initiate(" in script
    for service in SERVICES:
        assert f"MONGODB_{service.upper()}_PASSWORD" in init["environment"]


def test_compose_services_wait_for_topics_and_replica_set(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["build"]["args"]["SERVICE"] == name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["depends_on"]["kafka-topics"]["condition"] == (
            "service_completed_successfully"
        )
        assert service["depends_on"]["mongodb-init"]["condition"] == (
            "service_completed_successfully"
        )
        env = service["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["MONGODB_URL"].startswith(f"mongodb://ketenbus-{name}:${{")
        assert "replicaSet=rs0" in env["MONGODB_URL"]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]


def _mounted(service: dict[str, Any], source: str) -> str | None:
    """Where a service mounts a host path, read-only; None when it does not."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            if parts[0] == source:
                assert parts[2:] == ["ro"], volume
                return parts[1]
        elif volume.get("source") == source:
            assert volume["type"] == "bind" and volume["read_only"] is True, volume
            return str(volume["target"])
    return None


@pytest.mark.parametrize("name", [*SERVICES, "kafka-topics"])
def test_every_kafka_client_logs_in_with_scram_over_tls(compose: dict[str, Any], name: str) -> None:
    """SASL_SSL with SCRAM-SHA-512 (the settings of ketenbus.kit.settings), a user of its own
    whose password comes from .env, and the CA of generate-certs.sh to verify the broker."""
    service = compose["services"][name]
    env = service["environment"]
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    user = "admin" if name == "kafka-topics" else name
    assert env["KAFKA_SASL_USERNAME"] == f"ketenbus-{user}"
    assert env["KAFKA_SASL_PASSWORD"].startswith(f"${{KAFKA_{user.upper()}_PASSWORD:?")
    ca_directory = _mounted(service, "./certs/kafka-ca")
    assert ca_directory is not None
    assert env["KAFKA_SSL_CAFILE"] == f"{ca_directory}/ca.crt"
    # Long syntax, so that a missing certs/ is an error rather than an empty directory.
    (volume,) = [v for v in service["volumes"] if isinstance(v, dict)]
    assert volume["bind"]["create_host_path"] is False


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """LISTENERS syntax: NAME://host:port,... -> name: (host, port)."""
    found = {}
    for entry in value.split(","):
        name, address = entry.split("://")
        host, port = address.rsplit(":", 1)
        found[name] = (host, int(port))
    return found


def test_the_broker_speaks_sasl_ssl_to_every_client(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert set(listeners) == set(protocols)
    assert set(advertised) <= set(listeners)
    # The address the services are given is a SASL_SSL listener.
    (client,) = [n for n, (host, port) in advertised.items() if (host, port) == ("kafka", 9092)]
    assert protocols[client] == "SASL_SSL"
    # Whatever listens beyond the container's loopback is SASL_SSL; PLAINTEXT (the controller,
    # the broker's own inter-broker listener) only on loopback.
    for name, (host, _port) in listeners.items():
        if protocols[name] != "SASL_SSL":
            assert host in {"localhost", "127.0.0.1"}, name
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9093"
    assert protocols[env["KAFKA_CONTROLLER_LISTENER_NAMES"]] == "PLAINTEXT"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    # The published port is a SASL_SSL listener too (tools on this machine).
    (published,) = compose["services"]["kafka"]["ports"]
    host_port = int(published.rsplit(":", 1)[1])
    (host_listener,) = [n for n, (_h, port) in listeners.items() if port == host_port]
    assert protocols[host_listener] == "SASL_SSL"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    # The image turns a listener named *SSL or SASL_* into its own keystore and JAAS-file
    # conventions (KAFKA_SSL_KEYSTORE_FILENAME, KAFKA_OPTS): these names stay out of that.
    assert not [n for n in listeners if "SSL" in n or "SASL" in n]


def image_properties(env: dict[str, Any]) -> dict[str, str]:
    """server.properties as the apache/kafka image writes it from KAFKA_* variables (its
    KafkaDockerWrapper: drop KAFKA_, lower-case, then _ -> ., ___ -> -, __ -> _)."""
    excluded = {
        "KAFKA_VERSION",
        "KAFKA_HEAP_OPT",
        "KAFKA_LOG4J_OPTS",
        "KAFKA_OPTS",
        "KAFKA_JMX_OPTS",
        "KAFKA_JVM_PERFORMANCE_OPTS",
        "KAFKA_GC_LOG_OPTS",
        "KAFKA_LOG4J_ROOT_LOGLEVEL",
        "KAFKA_LOG4J_LOGGERS",
        "KAFKA_TOOLS_LOG4J_LOGLEVEL",
        "KAFKA_JMX_HOSTNAME",
    }
    properties = {}
    for name, value in env.items():
        if name.startswith("KAFKA_") and name not in excluded:
            key = name.replace("KAFKA_", "").lower()
            key = key.replace("_", ".").replace("...", "-").replace("..", "_")
            properties[key] = str(value)
    return properties


def test_the_broker_configuration_the_image_makes_of_it(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    properties = image_properties(env)
    protocols = dict(
        item.split(":") for item in properties["listener.security.protocol.map"].split(",")
    )
    jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    for listener, protocol in protocols.items():
        key = f"listener.name.{listener.lower()}.scram-sha-512.sasl.jaas.config"
        assert (properties.get(key) == jaas) == (protocol == "SASL_SSL"), listener
    assert properties["ssl.keystore.type"] == "PKCS12"
    assert properties["ssl.keystore.location"].startswith(
        _mounted(compose["services"]["kafka"], "./certs/kafka-broker") + "/"
    )
    assert "auto.create.topics.enable" in properties
    # No secret in server.properties: passwords reach start-kafka.sh under other names.
    for name, value in env.items():
        if "PASSWORD" in name:
            assert not name.startswith("KAFKA_"), name
            assert str(value).startswith("${KAFKA_"), name


KAFKA_USERS = ("admin", *SERVICES)


def test_the_broker_creates_a_scram_user_for_every_client(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["entrypoint"] == ["bash", "/opt/ketenbus/start-kafka.sh"]
    assert _mounted(kafka, "./kafka") == "/opt/ketenbus"
    env = kafka["environment"]
    for user in KAFKA_USERS:
        assert env[f"SCRAM_{user.upper()}_PASSWORD"].startswith(
            f"${{KAFKA_{user.upper()}_PASSWORD:?"
        )
    for script in ("start-kafka.sh", "set-scram-passwords.sh"):
        text = (DEPLOY / "kafka" / script).read_text(encoding="utf-8")
        (users,) = re.findall(r"\b(?:users=\(|for user in )([a-z ]+)", text)
        assert tuple(users.split()) == KAFKA_USERS, script
        assert "ketenbus-$user" in text
    start = (DEPLOY / "kafka" / "start-kafka.sh").read_text(encoding="utf-8")
    assert "SCRAM-SHA-512=[name=ketenbus-$user,password=$password]" in start
    assert "exec /etc/kafka/docker/run" in start
    # The health check logs in over the client listener with the file start-kafka.sh writes.
    check = " ".join(kafka["healthcheck"]["test"])
    assert "--bootstrap-server kafka:9092" in check
    assert "--command-config /tmp/ketenbus-admin.properties" in check
    assert "cat > /tmp/ketenbus-admin.properties" in start
    # set-scram-passwords.sh uses the loopback listener, the one way in without a login.
    listeners = _listeners(env["KAFKA_LISTENERS"])
    internal = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    rotate = (DEPLOY / "kafka" / "set-scram-passwords.sh").read_text(encoding="utf-8")
    assert f"--bootstrap-server localhost:{listeners[internal][1]}" in rotate


@pytest.mark.parametrize("script", ["start-kafka.sh", "set-scram-passwords.sh"])
def test_the_kafka_scripts_are_valid_bash(script: str) -> None:
    path = DEPLOY / "kafka" / script
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    if shutil.which("shellcheck"):
        result = subprocess.run(
            ["shellcheck", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout


def test_compose_holds_no_secret_values() -> None:
    """Every password, key and token is a ${VARIABLE} from deploy/.env, never a literal (or
    the path of a file mounted from deploy/certs/, which git ignores: mailpit's TLS key)."""
    text = COMPOSE.read_text(encoding="utf-8")
    found = re.findall(r"^\s*([A-Z_]*(?:PASSWORD|KEY|KEYS|TOKEN))\s*:\s*(.+)$", text, re.M)
    assert len(found) > 20
    mounted_files = {"MP_SMTP_TLS_KEY": "/etc/mailpit/tls/mailpit.key"}
    for name, value in found:
        assert value.startswith("${") or mounted_files.get(name) == value, name
    assert "./certs/mailpit:/etc/mailpit/tls:ro" in text
    assert "prometheus/rules" in text and "grafana/dashboards" in text
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert {".env", "secrets/", "certs/"} <= set(ignored)


def _dotenv_names(path: Path) -> list[str]:
    return re.findall(r"^([A-Z0-9_]+)=", path.read_text(encoding="utf-8"), re.M)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the scripts, run as an operator would: ./generate-env.sh."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: generate-certs.sh needs it")
    copy = tmp_path_factory.mktemp("deploy")
    for script in ("generate-env.sh", "generate-certs.sh"):
        shutil.copy2(DEPLOY / script, copy / script)
    _run_script(copy / "generate-env.sh")
    return copy


def _run_script(path: Path, *arguments: str) -> str:
    result = subprocess.run(
        ["sh", str(path), *arguments], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_generate_env_writes_what_env_example_lists_and_compose_needs(generated: Path) -> None:
    env_file = generated / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    names = _dotenv_names(env_file)
    assert len(names) == len(set(names))
    example = _dotenv_names(DEPLOY / ".env.example")
    assert set(names) == set(example)
    needed = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text(encoding="utf-8")))
    # KAFKA_CLUSTER_ID has a default: it names the cluster, it is no secret.
    assert needed - {"KAFKA_CLUSTER_ID"} == set(names)
    values = dict(
        line.split("=", 1)
        for line in env_file.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    for name, value in values.items():
        if name.endswith("_PASSWORD"):
            assert re.fullmatch(r"[0-9a-f]{64}", value), name
    keys = json.loads(values["PARTNER_SHARING_KEYS"].strip("'"))
    assert sorted(keys) == sorted(values["PARTNER_ORGANISATIONS"].split(","))


def test_generate_env_adds_what_an_older_env_lacks_and_changes_nothing(
    tmp_path: Path, generated: Path
) -> None:
    for script in ("generate-env.sh", "generate-certs.sh"):
        shutil.copy2(generated / script, tmp_path / script)
    old = "# an .env of the PLAINTEXT compose file\nKETENBUS_MASTER_KEY=kept\nLOG_LEVEL=DEBUG\n"
    (tmp_path / ".env").write_text(old)
    output = _run_script(tmp_path / "generate-env.sh")
    text = (tmp_path / ".env").read_text()
    assert text.startswith(old)
    assert set(_dotenv_names(tmp_path / ".env")) == set(_dotenv_names(generated / ".env"))
    assert text.count("KETENBUS_MASTER_KEY=") == 1
    # It says which variables it added, and prints none of their values.
    assert "KAFKA_ADMIN_PASSWORD" in output and not re.search(r"[0-9a-f]{64}", output)
    _run_script(tmp_path / "generate-env.sh")
    assert (tmp_path / ".env").read_text() == text


def test_generate_certs_makes_a_ca_and_a_broker_keystore(generated: Path) -> None:
    certs = generated / "certs"
    assert stat.S_IMODE(certs.stat().st_mode) == 0o700
    assert stat.S_IMODE((certs / "ca" / "ca.key").stat().st_mode) == 0o600
    # The mounted directories are readable by the containers' users (uid 1000 and 10001).
    for directory in ("kafka-ca", "kafka-broker"):
        assert stat.S_IMODE((certs / directory).stat().st_mode) == 0o755
        for path in (certs / directory).iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert sorted(p.name for p in (certs / "kafka-broker").iterdir()) == [
        "ca.crt",
        "keystore.p12",
        "keystore.password",
    ]
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(certs / "kafka-ca" / "ca.crt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CA:TRUE" in text


def _keystore(certs: Path) -> tuple[bytes, bytes]:
    """The broker's key and certificate chain (PEM) out of the PKCS12 keystore."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        pkcs12,
    )

    password = (certs / "kafka-broker" / "keystore.password").read_bytes().strip()
    key, certificate, chain = pkcs12.load_key_and_certificates(
        (certs / "kafka-broker" / "keystore.p12").read_bytes(), password
    )
    assert key is not None and certificate is not None
    pem_key = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    pem_chain = b"".join(c.public_bytes(Encoding.PEM) for c in [certificate, *chain])
    return pem_key, pem_chain


def _handshake(certs: Path, tmp_path: Path, server_name: str) -> str:
    """A TLS handshake between a server with the broker's keystore and a client that verifies
    it as the services do (ssl.create_default_context(cafile=KAFKA_SSL_CAFILE)), over a
    socket pair; returns the protocol version."""
    pem_key, pem_chain = _keystore(certs)
    (tmp_path / "key.pem").write_bytes(pem_key)
    (tmp_path / "chain.pem").write_bytes(pem_chain)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    client_context = ssl.create_default_context(cafile=str(certs / "kafka-ca" / "ca.crt"))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(right, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as error:
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(left, server_hostname=server_name) as tls:
            assert tls.recv(2) == b"ok"
            return str(tls.version())
    finally:
        thread.join(timeout=10)


@pytest.mark.parametrize("server_name", ["kafka", "localhost", "127.0.0.1"])
def test_the_broker_certificate_is_trusted_for_its_names(
    generated: Path, tmp_path: Path, server_name: str
) -> None:
    assert _handshake(generated / "certs", tmp_path, server_name).startswith("TLS")


def test_the_broker_certificate_is_refused_for_another_name(
    generated: Path, tmp_path: Path
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(generated / "certs", tmp_path, "mongodb")


def test_java_reads_the_broker_keystore(generated: Path) -> None:
    """The broker is Java: its keytool opens the PKCS12 file with the password beside it."""
    keytool = shutil.which("keytool")
    if keytool is None:
        pytest.skip("keytool (a JDK) is not installed")
    broker = generated / "certs" / "kafka-broker"
    result = subprocess.run(
        [
            keytool,
            "-list",
            "-storetype",
            "PKCS12",
            "-keystore",
            str(broker / "keystore.p12"),
            "-storepass",
            (broker / "keystore.password").read_text().strip(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PrivateKeyEntry" in result.stdout


def test_generate_certs_renews_the_broker_certificate_from_the_same_ca(
    tmp_path: Path, generated: Path
) -> None:
    shutil.copy2(generated / "generate-certs.sh", tmp_path / "generate-certs.sh")
    _run_script(tmp_path / "generate-certs.sh")
    ca = (tmp_path / "certs" / "ca" / "ca.crt").read_bytes()
    keystore = (tmp_path / "certs" / "kafka-broker" / "keystore.p12").read_bytes()
    assert "not replacing" in _run_script(tmp_path / "generate-certs.sh")
    assert (tmp_path / "certs" / "kafka-broker" / "keystore.p12").read_bytes() == keystore
    _run_script(tmp_path / "generate-certs.sh", "--renew")
    assert (tmp_path / "certs" / "kafka-broker" / "keystore.p12").read_bytes() != keystore
    assert (tmp_path / "certs" / "kafka-ca" / "ca.crt").read_bytes() == ca
    assert _handshake(tmp_path / "certs", tmp_path, "kafka").startswith("TLS")


def test_compose_mounts_what_exists(compose: dict[str, Any]) -> None:
    # secrets/ and certs/ are made by generate-env.sh, outside git.
    made = ("./secrets", "./certs/")
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./") and not source.startswith(made):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


def _docker_compose() -> list[str]:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    pytest.skip("the docker compose plugin is not installed: cannot run `docker compose config`")


def test_docker_compose_config(tmp_path: Path) -> None:
    command = _docker_compose()
    env_file = tmp_path / ".env"
    names = re.findall(r"^([A-Z_]+)=", (DEPLOY / ".env.example").read_text(), re.M)
    env_file.write_text("".join(f"{name}=placeholder\n" for name in names))
    result = subprocess.run(
        [*command, "--env-file", str(env_file), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ Dockerfile


def test_dockerfile_builds_one_service_from_the_lock_as_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert (
        'uv sync --frozen --no-dev --no-install-workspace --package "ketenbus-${SERVICE}"' in text
    )
    assert 'uv sync --frozen --no-dev --no-editable --package "ketenbus-${SERVICE}"' in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*", text, re.M) and "/healthz" in text
    assert 'python -m \\"ketenbus.${KETENBUS_SERVICE}\\"' in text
    # The devstack (its engines and tools) is never copied in, only its pyproject for the workspace.
    copies = re.findall(r"^COPY (?!--from)(\S+)", text, re.M)
    assert not [c for c in copies if c.startswith("devstack") and c != "devstack/pyproject.toml"]
    assert '! /opt/venv/bin/python -c "import ketenbus.devstack"' in text
    for image in re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, re.M):
        assert PINNED.match(image), image
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.M)
    assert [alias for _, alias in stages] == ["uv", "build", "runtime"]


def test_dockerignore_keeps_local_state_out() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert lines[lines.index("*")] == "*"  # allow-list: everything is excluded first
    assert "**/.env" in lines and "**/.ketenbus/" in lines
    assert "!devstack/src/" not in lines


# ------------------------------------------------------------------ Grafana provisioning


def test_grafana_dashboards_use_the_provisioned_datasource(yaml: ModuleType) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "ketenbus.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    uids = set()
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard["uid"] not in uids
        uids.add(dashboard["uid"])
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == datasource["uid"], (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource["uid"]


# ------------------------------------------------------------------ topic provisioning


def test_provisioning_plans_every_registry_topic_and_its_dlq() -> None:
    partners = provision_topics.partner_ids_from(" huisarts-de-linde, schuldhulp-midden ,")
    assert partners == ["huisarts-de-linde", "schuldhulp-midden"]
    planned = {t.name: t for t in provision_topics.planned_topics(partners)}
    registry = (*topics.INTERNAL_TOPICS, *topics.topics_for_partners(partners))
    assert set(planned) == {t.name for t in registry} | {t.dlq for t in registry}
    for topic in registry:
        assert planned[topic.name].partitions == topic.partitions
        assert planned[topic.dlq].partitions == topic.partitions
        assert planned[topic.name].config["retention.ms"] == str(topic.retention_ms)
        assert planned[topic.dlq].config["retention.ms"] == str(topic.dlq_retention_ms)


def test_provisioning_connects_as_the_services_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same settings as the services (ketenbus.kit.settings), turned into aiokafka's."""
    for name in list(os.environ):
        if name.startswith("KAFKA_"):
            monkeypatch.delenv(name)
    assert provision_topics.connection_options(ServiceSettings()) == {}
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
        provision_topics.connection_options(ServiceSettings())
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "ketenbus-admin")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "secret")
    options = provision_topics.connection_options(ServiceSettings())
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ketenbus-admin",
        "sasl_plain_password": "secret",
    }
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_provisioning_refuses_a_bad_organisation_id() -> None:
    with pytest.raises(ValueError, match="not a valid organisation id"):
        provision_topics.planned_topics(["Huisarts De Linde"])


@pytest.mark.stack
async def test_provisioning_creates_topics_on_a_real_broker(kafka: KafkaAccess) -> None:
    """Against the session's embedded Apache Kafka (on 127.0.0.1, as its operator): creates a
    new partner's topics, accepts the existing ones, a second run changes nothing, and a topic
    whose partition count differs from the plan is reported, not changed."""
    assert kafka.bootstrap.startswith("127.0.0.1:")
    connection = kafka.client_options()
    bootstrap = connection.pop("bootstrap_servers")
    planned = provision_topics.planned_topics(["deploy-test-partner"])
    assert await provision_topics.provision(bootstrap, planned, 1, connection=connection) == []
    assert await provision_topics.provision(bootstrap, planned, 1, connection=connection) == []
    wrong = provision_topics.PlannedTopic(topics.REFERRALS.name, 5, {})
    assert await provision_topics.provision(bootstrap, [wrong], 1, connection=connection) == [
        f"{topics.REFERRALS.name}: 3 partitions, the registry says 5"
    ]


def test_mailpit_gets_a_certificate_notifications_verifies_for_its_name(generated: Path) -> None:
    """Notifications requires STARTTLS off loopback and verifies the relay: in compose that is
    mailpit, with a certificate from the CA that SMTP_CA_FILE adds to the system's."""
    certs = generated / "certs"
    mailpit = certs / "mailpit"
    assert stat.S_IMODE(mailpit.stat().st_mode) == 0o755
    assert sorted(p.name for p in mailpit.iterdir()) == ["mailpit.crt", "mailpit.key"]
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(mailpit / "mailpit.crt", mailpit / "mailpit.key")
    client_context = ssl.create_default_context()
    client_context.load_verify_locations(cafile=str(certs / "kafka-ca" / "ca.crt"))
    left, right = socket.socketpair()

    def serve() -> None:
        with (
            contextlib.suppress(ssl.SSLError, OSError),
            server_context.wrap_socket(right, server_side=True) as tls,
        ):
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(left, server_hostname="mailpit") as tls:
            assert tls.recv(2) == b"ok"
    finally:
        thread.join(timeout=10)
    compose = COMPOSE.read_text(encoding="utf-8")
    assert "SMTP_SECURITY: ${SMTP_SECURITY:-starttls}" in compose
    assert "MP_SMTP_TLS_CERT: /etc/mailpit/tls/mailpit.crt" in compose
