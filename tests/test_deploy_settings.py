"""The settings the services read, against what deploy/docker-compose.yml and deploy/k8s give them.

Derived from the code, not copied: each service's settings class (pydantic-settings, a subclass
of ketenbus.kit.settings.ServiceSettings) names the environment variables it reads (a field's
name, or its validation alias or aliases) and says which have no default. The tests fail when a
deployment does not give a service a setting it requires, or one that production needs although
the code has a default (WANTED below: the Kafka security settings, the partners and the keys),
or gives a service a variable it does not read (a typo, a renamed or removed setting, or a key
meant for another service).

Then the values themselves: the compose environment, interpolated with an .env that
generate-env.sh writes, and the Kubernetes ConfigMaps (with stand-ins for the Secrets), are fed
to each settings class, which must accept them; the files they name must be mounted.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import AliasChoices, SecretStr

from ketenbus.contracts import sealing
from ketenbus.kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S_BASE = DEPLOY / "k8s" / "base"
SERVICES = ("intake", "trajectory", "notifications", "learning", "analytics")

# What a production deployment must set although the code has a default: the defaults are for
# a workstation (PLAINTEXT Kafka on 127.0.0.1, no partners, no keys, packaged policies).
WANTED_BY_EVERY_SERVICE = frozenset(
    {
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CAFILE",
        "MONGODB_URL",
        "HTTP_HOST",
        "HTTP_PORT",
        "KETENBUS_HOME",
        "API_KEYS_FILE",
        "LOG_LEVEL",
        "CONSUMER_BATCH_SIZE",
    }
)
WANTED = {
    "intake": WANTED_BY_EVERY_SERVICE | {"PARTNER_ORGANISATIONS", "PARTNER_SHARING_KEYS"},
    "trajectory": WANTED_BY_EVERY_SERVICE
    | {"PARTNER_ORGANISATIONS", "FEEDBACK_SHARING_KEY", "REGISTRATION_GRACE"},
    "notifications": WANTED_BY_EVERY_SERVICE
    | {
        "NOTIFICATIONS_PUBLIC_URL",
        "NOTIFICATION_POLICIES_FILE",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_SENDER",
        "MESSAGE_ID_DOMAIN",
        "SMS_PROVIDER_URL",
        "SMS_PROVIDER_KIND",
        "SMS_PROVIDER_TOKEN",
    },
    "learning": WANTED_BY_EVERY_SERVICE | {"FEEDBACK_SHARING_KEY", "LEARNING_MASTER_KEY"},
    "analytics": WANTED_BY_EVERY_SERVICE | {"BENCHMARK_PSEUDONYM_KEY"},
}


# ------------------------------------------------------------------ what the code reads


@dataclass(frozen=True)
class Setting:
    field: str
    names: tuple[str, ...]  # environment variables, any of which sets the field
    required: bool


def env_settings(settings_class: type[ServiceSettings]) -> list[Setting]:
    """The environment variables a pydantic-settings class reads, per field."""
    config = settings_class.model_config
    prefix = config.get("env_prefix", "")
    case_sensitive = config.get("case_sensitive", False)
    found = []
    for field, info in settings_class.model_fields.items():
        alias = info.validation_alias if info.validation_alias is not None else info.alias
        if isinstance(alias, str):
            names: tuple[str, ...] = (alias,)
        elif isinstance(alias, AliasChoices):
            # An AliasPath reads inside a value, not a variable of its own.
            names = tuple(choice for choice in alias.choices if isinstance(choice, str))
        else:
            names = (prefix + field,)
        if not case_sensitive:
            names = tuple(name.upper() for name in names)
        found.append(Setting(field, names, info.is_required()))
    return found


def settings_class_of(service: str) -> type[ServiceSettings]:
    """The ServiceSettings subclass that ketenbus.<service>.settings defines."""
    module = importlib.import_module(f"ketenbus.{service}.settings")
    classes = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, ServiceSettings)
        and value.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"ketenbus.{service}.settings defines {classes}"
    return classes[0]


def read_names(service: str) -> set[str]:
    return {name for setting in env_settings(settings_class_of(service)) for name in setting.names}


def required(service: str) -> list[Setting]:
    return [setting for setting in env_settings(settings_class_of(service)) if setting.required]


def missing(service: str, provided: set[str]) -> set[str]:
    """The required settings (any one of a field's names will do) and the wanted variables
    that `provided` lacks."""
    lacking = {
        " or ".join(setting.names)
        for setting in required(service)
        if not set(setting.names) & provided
    }
    return lacking | (WANTED[service] - provided)


# ------------------------------------------------------------------ what the deployments give


@pytest.fixture(scope="module")
def yaml() -> ModuleType:
    return pytest.importorskip("yaml", reason="PyYAML is needed to read the deployments")


@pytest.fixture(scope="module")
def compose(yaml: ModuleType) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def image_environment() -> dict[str, str]:
    """ENV of the runtime stage of deploy/Dockerfile: what every container has before compose
    or Kubernetes add anything."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    runtime = text[text.index("AS runtime") :].replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", runtime, re.M):
        found.update(re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", line))
    return {name: value.strip('"') for name, value in found.items()}


def compose_environment(compose: dict[str, Any], service: str) -> dict[str, str]:
    environment = compose["services"][service]["environment"]
    assert isinstance(environment, dict), f"{service}: environment as a mapping, please"
    return {str(name): str(value) for name, value in environment.items()}


@dataclass
class Workload:
    """A Kubernetes service container: its variables and where each comes from."""

    literal: dict[str, str]  # env: value
    from_secrets: set[str]  # env: valueFrom.secretKeyRef, and every key of envFrom Secrets
    config_maps: dict[str, str]  # every key of envFrom ConfigMaps
    mounts: dict[str, dict[str, Any]]  # mountPath -> the volume

    @property
    def names(self) -> set[str]:
        return set(self.literal) | self.from_secrets | set(self.config_maps)


def _k8s_documents(yaml: ModuleType) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(K8S_BASE.rglob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return documents


@pytest.fixture(scope="module")
def workloads(yaml: ModuleType) -> dict[str, Workload]:
    documents = _k8s_documents(yaml)
    config_maps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    secrets_ = {
        d["metadata"]["name"]: d.get("stringData", {}) for d in documents if d["kind"] == "Secret"
    }
    found = {}
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        workload = Workload({}, set(), {}, {})
        for entry in container.get("env", []):
            if "value" in entry:
                workload.literal[entry["name"]] = str(entry["value"])
            else:
                assert "secretKeyRef" in entry["valueFrom"], entry
                workload.from_secrets.add(entry["name"])
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                name = source["configMapRef"]["name"]
                assert name in config_maps, f"{deployment['metadata']['name']}: no ConfigMap {name}"
                workload.config_maps.update({k: str(v) for k, v in config_maps[name].items()})
            else:
                name = source["secretRef"]["name"]
                assert name in secrets_, f"{deployment['metadata']['name']}: no Secret {name}"
                workload.from_secrets.update(secrets_[name])
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            workload.mounts[mount["mountPath"]] = volumes[mount["name"]]
        found[deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]] = (
            workload
        )
    assert set(found) == set(SERVICES)
    return found


# ------------------------------------------------------------------ the derivation itself


def test_the_settings_are_derived_from_the_settings_classes() -> None:
    """Field names, single aliases and alias choices; required is what has no default."""
    intake = {s.field: s for s in env_settings(settings_class_of("intake"))}
    assert intake["ketenbus_master_key"] == Setting(
        "ketenbus_master_key", ("KETENBUS_MASTER_KEY",), True
    )
    assert intake["partner_sharing_keys"].names == ("PARTNER_SHARING_KEYS",)
    assert not intake["partner_sharing_keys"].required
    assert intake["home"].names == ("KETENBUS_HOME",)  # the kit's, with an alias
    assert intake["consumer_batch_size"].names == ("CONSUMER_BATCH_SIZE",)
    analytics = {s.field: s for s in env_settings(settings_class_of("analytics"))}
    assert analytics["benchmark_pseudonym_key"].names == (
        "BENCHMARK_PSEUDONYM_KEY",
        "PSEUDONYM_KEY",
    )
    notifications = {s.field: s for s in env_settings(settings_class_of("notifications"))}
    assert notifications["public_url"].names == ("NOTIFICATIONS_PUBLIC_URL",)
    assert [s.names for s in required("notifications")] == [("CONTACT_SHARING_KEY",)]
    assert missing("analytics", {"PSEUDONYM_KEY"}) == WANTED["analytics"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_app_uses_the_settings_class_read_here(service: str) -> None:
    from ketenbus.kit.runtime import Service

    module = importlib.import_module(f"ketenbus.{service}.app")
    (declared,) = [value for value in vars(module).values() if isinstance(value, Service)]
    assert declared.settings_class is settings_class_of(service)


@pytest.mark.parametrize("service", SERVICES)
def test_every_wanted_setting_is_one_the_service_reads(service: str) -> None:
    """The list of what production must set cannot go stale: a renamed setting fails here."""
    assert WANTED[service] - read_names(service) == set()


def test_the_services_read_the_environment_only_through_their_settings() -> None:
    """Otherwise a variable could be read that no settings class names, and the deployment
    checks below would not know of it."""
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("kit/src/**/*.py")]
    assert sources
    readers = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bos\.environ\b|\bgetenv\(|\benviron\[", line)
    ]
    assert readers == [], "read settings through the service's settings class"


# ------------------------------------------------------------------ docker compose


@pytest.mark.parametrize("service", SERVICES)
def test_compose_gives_each_service_what_it_needs(compose: dict[str, Any], service: str) -> None:
    provided = set(compose_environment(compose, service)) | set(image_environment())
    assert missing(service, provided) == set()


@pytest.mark.parametrize("service", SERVICES)
def test_compose_gives_no_service_a_variable_it_does_not_read(
    compose: dict[str, Any], service: str
) -> None:
    assert set(compose_environment(compose, service)) - read_names(service) == set()


# ------------------------------------------------------------------ Kubernetes


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_gives_each_service_what_it_needs(workloads: dict[str, Workload], service: str) -> None:
    assert missing(service, workloads[service].names) == set()


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_gives_no_service_a_variable_it_does_not_read(
    workloads: dict[str, Workload], service: str
) -> None:
    assert workloads[service].names - read_names(service) == set()


def test_k8s_secrets_hold_secrets_and_config_maps_the_rest(workloads: dict[str, Workload]) -> None:
    for service, workload in workloads.items():
        for name in workload.names:
            secret = re.search(r"(KEY|KEYS|PASSWORD|TOKEN|MONGODB_URL)$", name) is not None
            assert (name in workload.from_secrets) == secret, (service, name)


# ------------------------------------------------------------------ the values


def _interpolate(value: str, env: dict[str, str]) -> str:
    """docker compose's ${VAR}, ${VAR:-default} and ${VAR:?error}."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        current = env.get(name, "")
        if operator == ":?":
            assert current, f"{name}: {argument}"
        if operator == ":-" and not current:
            return argument
        return current

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", one, value)


def _dotenv(path: Path) -> dict[str, str]:
    """The .env syntax generate-env.sh writes: NAME=value, single quotes taken literally."""
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            env[name] = value
    return env


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/ in which generate-env.sh has run (.env, certs/, secrets/)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: generate-certs.sh needs it")
    copy = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns(".env", "certs", "secrets"))
    result = subprocess.run(
        ["sh", str(copy / "generate-env.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return copy


def _bind_mounts(compose: dict[str, Any], service: str) -> dict[str, str]:
    """target -> source of a service's bind mounts."""
    mounts = {}
    for volume in compose["services"][service].get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        if source.startswith("."):
            mounts[target] = source
    return mounts


def _on_host(deploy: Path, mounts: dict[str, str], container_path: str) -> Path:
    """Where a path inside a container comes from on the host; fails when it is not mounted."""
    for target, source in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if container_path == target or container_path.startswith(target + "/"):
            return deploy / source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted")


@pytest.mark.parametrize("service", SERVICES)
def test_compose_values_are_accepted_by_the_service(
    compose: dict[str, Any], generated: Path, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's own settings class reads the environment compose gives it (with the .env
    generate-env.sh writes), the keys are keys, and every file it names is mounted and exists
    (the CA file is read where it lies, and the broker client is built with it)."""
    from ketenbus.kit.broker import create_broker

    dotenv = _dotenv(generated / ".env")
    env = {**image_environment()}
    env.update(
        {
            name: _interpolate(value, dotenv)
            for name, value in compose_environment(compose, service).items()
        }
    )
    mounts = _bind_mounts(compose, service)
    for name in ("KAFKA_SSL_CAFILE", "API_KEYS_FILE", "NOTIFICATION_POLICIES_FILE"):
        if name in env:
            on_host = _on_host(generated, mounts, env[name])
            assert on_host.is_file(), f"{service}: {name}={env[name]} is {on_host}, missing"
            env[name] = str(on_host)
    settings_class = settings_class_of(service)
    for name in read_names(service):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = settings_class()

    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_sasl_username == f"ketenbus-{service}"
    create_broker(settings, CollectorRegistry())  # TLS context from the generated CA
    for field, value in settings:
        if field.endswith("_key") and isinstance(value, SecretStr):
            sealing.key_from_text(value.get_secret_value())
    if service == "intake":
        from ketenbus.intake.settings import IntakeSettings

        assert isinstance(settings, IntakeSettings)
        assert settings.partner_organisations
        assert set(settings.partner_sharing_keys) == set(settings.partner_organisations)
        for key in settings.partner_sharing_keys.values():
            sealing.key_from_text(key.get_secret_value())
    if service == "notifications":
        from ketenbus.notifications.policies import Policies
        from ketenbus.notifications.settings import NotificationSettings

        assert isinstance(settings, NotificationSettings)
        Policies.load(settings.notification_policies_file)
        assert settings.public_url


def _stand_in(name: str, partners: list[str]) -> str:
    """A valid value for a Secret's key (the committed ones are placeholders)."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    if name == "PARTNER_SHARING_KEYS":
        return json.dumps({org: key for org in partners})
    if name.endswith("_KEY"):
        return key
    if name == "MONGODB_URL":
        return "mongodb://user:password@mongodb.example.invalid/?replicaSet=rs0&tls=true"
    return secrets.token_hex(16)


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_values_are_accepted_by_the_service(
    workloads: dict[str, Workload], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ConfigMap values as the service reads them (the Secrets' placeholders replaced by
    valid stand-ins), and the files they name are mounted."""
    workload = workloads[service]
    partners = (DEPLOY / "k8s" / "partners.txt").read_text(encoding="utf-8").split()
    env = {**workload.config_maps, **workload.literal}
    env.update({name: _stand_in(name, partners) for name in workload.from_secrets})
    settings_class = settings_class_of(service)
    for name in read_names(service):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = settings_class()

    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_username == f"ketenbus-{service}"
    for name in ("KAFKA_SSL_CAFILE", "API_KEYS_FILE", "NOTIFICATION_POLICIES_FILE"):
        if name in env:
            directory = str(Path(env[name]).parent)
            assert directory in workload.mounts, f"{service}: {name} in {directory}: not mounted"
    if service == "notifications":
        volume = workload.mounts["/etc/ketenbus/notifications"]
        assert volume["configMap"]["name"] == "ketenbus-notification-policies"


def test_the_notification_policies_of_both_deployments_are_the_same_and_valid(
    yaml: ModuleType,
) -> None:
    from ketenbus.notifications.policies import Policies

    compose_copy = DEPLOY / "notifications" / "policies.json"
    k8s_copy = K8S_BASE / "notifications" / "policies.json"
    assert compose_copy.read_bytes() == k8s_copy.read_bytes()
    Policies.load(compose_copy)
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    (generator,) = [
        g
        for g in kustomization["configMapGenerator"]
        if g["name"] == "ketenbus-notification-policies"
    ]
    assert generator["files"] == ["policies.json=notifications/policies.json"]
