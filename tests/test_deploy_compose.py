"""deploy/docker-compose.yml, deploy/Dockerfile, the Grafana provisioning and the topic
provisioning script: static checks (no Docker engine needed), plus `docker compose config`
where the compose plugin is installed, and the provisioning against the embedded Kafka.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ketenbus.contracts import topics

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


def test_compose_holds_no_secret_values() -> None:
    """Every password and key is a ${VARIABLE} from deploy/.env, never a literal."""
    text = COMPOSE.read_text(encoding="utf-8")
    for match in re.finditer(r"^\s*([A-Z_]*(?:PASSWORD|KEY))\s*:\s*(.+)$", text, re.M):
        assert match.group(2).startswith("${"), match.group(0)
    assert "prometheus/rules" in text and "grafana/dashboards" in text
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored


def test_env_example_lists_every_variable_compose_needs() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{([A-Z_]+)(?::?[?-][^}]*)?\}", text))
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    generated = (DEPLOY / "generate-env.sh").read_text(encoding="utf-8")
    # KAFKA_CLUSTER_ID has a default: it names the cluster, it is no secret.
    assert needed - {"KAFKA_CLUSTER_ID"} <= listed
    for name in listed - {"KETENBUS_VERSION", "LOG_LEVEL", "PARTNER_ORGANISATIONS"}:
        assert name in generated or name.startswith("MONGODB_"), name


def test_compose_mounts_what_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./") and source != "./secrets":
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
    # The devstack (Tansu, SecantusDB) is never copied in, only its pyproject for the workspace.
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
        assert "retention.ms" in planned[topic.dlq].config


def test_provisioning_refuses_a_bad_organisation_id() -> None:
    with pytest.raises(ValueError, match="not a valid organisation id"):
        provision_topics.planned_topics(["Huisarts De Linde"])


@pytest.mark.stack
async def test_provisioning_creates_topics_on_a_real_broker(kafka_bootstrap: str) -> None:
    """Against the session's embedded Kafka (Tansu, on 127.0.0.1): creates a new partner's
    topics, accepts the existing ones, a second run changes nothing, and a topic whose
    partition count differs from the plan is reported, not changed."""
    assert kafka_bootstrap.startswith("127.0.0.1:")
    planned = provision_topics.planned_topics(["deploy-test-partner"])
    assert await provision_topics.provision(kafka_bootstrap, planned, 1) == []
    assert await provision_topics.provision(kafka_bootstrap, planned, 1) == []
    wrong = provision_topics.PlannedTopic(topics.REFERRALS.name, 5, {})
    assert await provision_topics.provision(kafka_bootstrap, [wrong], 1) == [
        f"{topics.REFERRALS.name}: 3 partitions, the registry says 5"
    ]
