"""deploy/k8s: the Strimzi topics and users follow the registry, partners are fenced in, the
services' ACLs cover what they consume and publish, the workloads have probes and limits, and
the committed Secrets hold placeholders only.

Parsing the manifests needs PyYAML (skipped with the reason when it is missing); building them
with kustomize needs kubectl (skipped likewise). Nothing here talks to a cluster.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ketenbus.contracts import access, topics

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
SERVICES = ("intake", "trajectory", "notifications", "learning", "analytics")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_kafka", K8S / "generate_kafka.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_kafka"] = module
    spec.loader.exec_module(module)
    return module


generate_kafka = _generator()
PARTNERS = generate_kafka.partners()


@pytest.fixture(scope="module")
def yaml() -> ModuleType:
    return pytest.importorskip(
        "yaml",
        reason="PyYAML is not installed in the workspace: add pyyaml to the dev dependency "
        "group to parse the Kubernetes manifests",
    )


def _documents(yaml: ModuleType, *paths: Path) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in paths:
        documents.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return documents


def _of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def _base(yaml: ModuleType) -> list[dict[str, Any]]:
    return _documents(yaml, *sorted(BASE.rglob("*.yaml")))


# ------------------------------------------------------------------ generated Kafka resources


def test_the_generated_kafka_resources_are_current() -> None:
    assert generate_kafka.main(["--check"]) == 0, "run: uv run python deploy/k8s/generate_kafka.py"


def test_the_example_partners() -> None:
    assert PARTNERS == ["huisarts-de-linde", "huisarts-oosterpoort", "schuldhulp-midden"]


def test_every_topic_of_the_registry_has_a_kafka_topic_and_a_dlq(yaml: ModuleType) -> None:
    declared = {d["spec"]["topicName"]: d["spec"] for d in _of_kind(_base(yaml), "KafkaTopic")}
    registry = (*topics.INTERNAL_TOPICS, *topics.topics_for_partners(PARTNERS))
    wanted = {t.name: t.partitions for t in registry}
    wanted |= {t.dlq: t.partitions for t in registry}
    assert {name: spec["partitions"] for name, spec in declared.items()} == wanted
    retention = {t.name: str(t.retention_ms) for t in registry}
    retention |= {t.dlq: str(t.dlq_retention_ms) for t in registry}
    for name, spec in declared.items():
        assert spec["replicas"] == 3, name
        assert spec["config"]["min.insync.replicas"] == "2", name
        assert spec["config"]["retention.ms"] == retention[name], name


def test_kafka_resources_belong_to_the_cluster(yaml: ModuleType) -> None:
    documents = _base(yaml)
    cluster = _of_kind(documents, "Kafka")[0]
    assert cluster["metadata"]["name"] == "ketenbus"
    for kind in ("KafkaTopic", "KafkaUser", "KafkaNodePool"):
        for document in _of_kind(documents, kind):
            assert document["metadata"]["labels"]["strimzi.io/cluster"] == "ketenbus"
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", document["metadata"]["name"])
    kafka = cluster["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    assert kafka["config"]["auto.create.topics.enable"] is False
    for listener in kafka["listeners"]:
        assert listener["tls"] is True, listener["name"]
        assert listener["authentication"]["type"] == "scram-sha-512", listener["name"]


def _acls(user: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], op)
        for acl in user["spec"]["authorization"]["acls"]
        for op in acl["operations"]
    }


def _users(yaml: ModuleType) -> dict[str, dict[str, Any]]:
    return {u["metadata"]["name"]: u for u in _of_kind(_base(yaml), "KafkaUser")}


def test_a_partner_writes_only_its_inbound_and_reads_only_its_outbound(
    yaml: ModuleType,
) -> None:
    users = _users(yaml)
    for org in PARTNERS:
        user = users[f"partner-{org}"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert _acls(user) == {
            ("topic", f"ketenbus.partners.{org}.inbound.v1", "literal", "Write"),
            ("topic", f"ketenbus.partners.{org}.inbound.v1", "literal", "Describe"),
            ("topic", f"ketenbus.partners.{org}.outbound.v1", "literal", "Read"),
            ("topic", f"ketenbus.partners.{org}.outbound.v1", "literal", "Describe"),
            ("group", f"{org}.", "prefix", "Read"),
        }
        assert user["spec"]["quotas"]["producerByteRate"] > 0
    assert {name for name in users if name.startswith("partner-")} == {
        f"partner-{org}" for org in PARTNERS
    }


def test_no_partner_prefix_covers_another_partners_groups() -> None:
    for org in PARTNERS:
        for other in PARTNERS:
            assert org == other or not f"{other}.".startswith(f"{org}.")


def test_a_service_user_per_service_with_least_privilege(yaml: ModuleType) -> None:
    users = _users(yaml)
    for service in SERVICES:
        user = users[f"ketenbus-{service}"]
        acls = _acls(user)
        assert ("group", service, "literal", "Read") in acls
        # No wildcard and no prefix: a service is granted named topics only.
        assert all(pattern == "literal" and name != "*" for _, name, pattern, _ in acls)
        assert not any(op in {"All", "Alter", "Create"} for *_, op in acls)
        deletes = {name for kind, name, _, op in acls if kind == "topic" and op == "Delete"}
        dead_letters = {
            topics.dead_letter_topic(t) for t in access.topics_with_dead_letters(PARTNERS)
        }
        # Only the purger deletes records, of the dead-letter topics, each of which it
        # reads and writes (it forgets an erased client's letters there).
        if service == access.DEAD_LETTER_PURGER:
            assert deletes == dead_letters
        else:
            assert deletes == set()
        reads = {name for kind, name, _, op in acls if kind == "topic" and op == "Read"}
        writes = {name for kind, name, _, op in acls if kind == "topic" and op == "Write"}
        assert deletes <= reads & writes
        # Every topic it reads (other than a dead-letter topic it purges), it may dead-letter.
        assert {topics.dead_letter_topic(name) for name in reads - deletes} <= writes
        # No service reads a partner's outbound topic or writes a partner's inbound topic.
        for org in PARTNERS:
            assert topics.partner_outbound(org).name not in reads
            assert topics.partner_inbound(org).name not in writes


def _declared_service(service: str) -> Any:
    """The Service the code declares, or a skip if the service is not importable yet."""
    try:
        module = importlib.import_module(f"ketenbus.{service}.app")
    except Exception as error:  # a service being written concurrently
        pytest.skip(f"ketenbus.{service}.app does not import ({type(error).__name__}: {error})")
    from ketenbus.kit.runtime import Service

    declared = [value for value in vars(module).values() if isinstance(value, Service)]
    if len(declared) != 1:
        pytest.skip(f"ketenbus.{service}.app declares {len(declared)} Service objects")
    return declared[0]


@pytest.mark.parametrize("service", SERVICES)
def test_the_acls_cover_what_the_service_code_consumes_and_publishes(
    yaml: ModuleType, service: str
) -> None:
    declared = _declared_service(service)
    acls = _acls(_users(yaml)[f"ketenbus-{service}"])
    reads = {name for kind, name, _, op in acls if kind == "topic" and op == "Read"}
    writes = {name for kind, name, _, op in acls if kind == "topic" and op == "Write"}
    consumed = set(declared.handlers.topics()) if declared.handlers else set()
    partner_topic = topics.PARTNER_TOPIC_PATTERN
    # Partner topics are per organisation: the code names the ones it was configured with.
    assert {t for t in consumed if not partner_topic.match(t)} <= reads
    assert {topics.dead_letter_topic(t) for t in consumed if not partner_topic.match(t)} <= writes
    for event in declared.publishes:
        if event.stream is not None:
            assert event.stream.name in writes, f"{service} publishes {event.__name__}"


# ------------------------------------------------------------------ workloads


def test_every_service_has_a_deployment_with_probes_limits_and_no_root(yaml: ModuleType) -> None:
    documents = _base(yaml)
    deployments = {d["metadata"]["name"]: d for d in _of_kind(documents, "Deployment")}
    assert set(deployments) == {f"ketenbus-{s}" for s in SERVICES}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        resources = container["resources"]
        assert resources["requests"]["memory"] and resources["requests"]["cpu"], name
        limit = resources["limits"]["memory"]
        assert limit.endswith("Mi") and 150 < int(limit[:-2]) <= 512, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["KAFKA_SASL_USERNAME"]["value"] == name
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == name
        # A service sees its own Secret only.
        secret_refs = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
        assert secret_refs == [f"{name}-secrets"], name


def test_replicas_never_exceed_the_partitions_a_service_reads(yaml: ModuleType) -> None:
    documents = _base(yaml)
    users = _users(yaml)
    partitions = {
        d["spec"]["topicName"]: d["spec"]["partitions"] for d in _of_kind(documents, "KafkaTopic")
    }
    autoscalers = {
        d["spec"]["scaleTargetRef"]["name"]: d["spec"]["maxReplicas"]
        for d in _of_kind(documents, "HorizontalPodAutoscaler")
    }
    for deployment in _of_kind(documents, "Deployment"):
        name = deployment["metadata"]["name"]
        most = autoscalers.get(name, deployment["spec"].get("replicas", 1))
        read = {
            topic
            for kind, topic, _, op in _acls(users[name])
            if kind == "topic" and op == "Read" and not topics.PARTNER_TOPIC_PATTERN.match(topic)
        }
        assert read, name
        assert most <= max(partitions[topic] for topic in read), name
        if name in autoscalers:
            assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns replicas"


def test_committed_secrets_are_placeholders(yaml: ModuleType) -> None:
    overlay = _documents(yaml, *sorted((K8S / "overlays").rglob("*.yaml")))
    secrets = _of_kind(_base(yaml) + overlay, "Secret")
    assert secrets
    for secret in secrets:
        assert "data" not in secret, secret["metadata"]["name"]
        for key, value in secret.get("stringData", {}).items():
            assert value == "" or value.startswith("REPLACE-ME"), (secret["metadata"]["name"], key)


def test_the_partner_list_is_the_same_everywhere(yaml: ModuleType) -> None:
    config_maps = {
        c["metadata"]["name"]: c["data"]
        for c in _of_kind(_documents(yaml, BASE / "config.yaml"), "ConfigMap")
    }
    assert config_maps["ketenbus-partners"]["PARTNER_ORGANISATIONS"].split(",") == PARTNERS
    compose = (ROOT / "deploy" / "docker-compose.yml").read_text(encoding="utf-8")
    assert f"PARTNER_ORGANISATIONS:-{','.join(PARTNERS)}}}" in compose


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot build the kustomizations")
    return kubectl


@pytest.mark.parametrize("path", ["base", "overlays/example"])
def test_kustomize_builds(yaml: ModuleType, path: str) -> None:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "KafkaTopic", "KafkaUser", "Kafka", "Secret"} <= kinds
    if path.startswith("overlays"):
        namespaced = [d for d in documents if d["kind"] != "Namespace"]
        assert {d["metadata"].get("namespace") for d in namespaced} == {"ketenbus"}
        images = {
            c["image"]
            for d in _of_kind(documents, "Deployment")
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert all(re.fullmatch(r"[a-z0-9./-]+/ketenbus-[a-z]+:[0-9][\w.]*", i) for i in images)


def test_strimzi_v1_api_and_the_same_kafka_version_as_compose(yaml: ModuleType) -> None:
    documents = _base(yaml)
    strimzi = [d for d in documents if d["apiVersion"].startswith("kafka.strimzi.io/")]
    # Strimzi 1.0 and later serve only v1.
    assert {d["apiVersion"] for d in strimzi} == {"kafka.strimzi.io/v1"}
    version = _of_kind(documents, "Kafka")[0]["spec"]["kafka"]["version"]
    compose = (ROOT / "deploy" / "docker-compose.yml").read_text(encoding="utf-8")
    assert f"image: apache/kafka:{version}\n" in compose
