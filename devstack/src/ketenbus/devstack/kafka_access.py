"""Who connects to the stack's Kafka, and how: SASL_SSL, SCRAM-SHA-512, the stack's own CA.

Every stack home has `<home>/kafka/users.json` (mode 0600): a generated password per user,
kept because the broker's data (and so its SCRAM credentials) is kept across restarts. Users:
- `ketenbus-admin`: the operator (the stack itself, `ketenbus` commands, tests that read
  every topic); a super user, the only one that creates topics and ACLs;
- `ketenbus-<service>`: one per service, with only its grants (ketenbus.contracts.access);
- `partner-<org>`: one per partner organisation.

`KafkaAccess` hands each of them the connection settings: `client_options(user)` for an
aiokafka client, `service_environment(user)` for a service process (ketenbus.kit.settings).
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ketenbus.contracts import access
from ketenbus.devstack.private_files import write_private
from ketenbus.kit.broker import client_options
from ketenbus.kit.settings import ServiceSettings

ADMIN = "ketenbus-admin"
MECHANISM = "SCRAM-SHA-512"
PROTOCOL = "SASL_SSL"
USERS_FILE = "users.json"


def wanted_users(partner_ids: Iterable[str]) -> list[str]:
    return [
        ADMIN,
        *(access.service_user(service) for service in access.SERVICE_ACCESS),
        *(access.partner_user(org) for org in partner_ids),
    ]


def load_or_create_users(directory: Path, users: Iterable[str]) -> dict[str, str]:
    """Every user's password in `directory/users.json`, generating the missing ones."""
    path = directory / USERS_FILE
    known: dict[str, str] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    missing = [user for user in users if user not in known]
    if missing:
        # URL-safe characters only: the password also appears in JAAS and SCRAM settings.
        known.update({user: secrets.token_urlsafe(24) for user in missing})
        directory.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(known, indent=2))
    return known


@dataclass(frozen=True)
class KafkaAccess:
    """The stack's Kafka as one user or another sees it.

    `directory` holds users.json and tls/ca.pem of a cluster the stack made; None for a Kafka
    from outside, reached with the caller's KAFKA_* settings.
    """

    bootstrap: str
    directory: Path | None = None

    @classmethod
    def from_environment(cls, bootstrap: str) -> KafkaAccess:
        """An external Kafka: the caller's KAFKA_* settings, as the services read them; they
        are passed on to the services unchanged (see service_environment)."""
        return cls(bootstrap)

    @property
    def external(self) -> bool:
        return self.directory is None

    @property
    def ca_file(self) -> Path | None:
        return None if self.directory is None else self.directory / "tls" / "ca.pem"

    @property
    def users(self) -> dict[str, str]:
        if self.directory is None:
            return {}
        return dict(json.loads((self.directory / USERS_FILE).read_text("utf-8")))

    def password(self, user: str) -> str:
        try:
            return self.users[user]
        except KeyError:
            raise KeyError(f"the stack's Kafka has no user {user!r}") from None

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def client_options(self, user: str = ADMIN) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient as `user`."""
        if self.external:
            return _external_client_options(self.bootstrap)
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": PROTOCOL,
            "ssl_context": self.ssl_context(),
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.password(user),
        }

    def service_environment(self, user: str) -> dict[str, str]:
        """The settings a service process reads (ketenbus.kit.settings) to connect as `user`."""
        if self.external:
            return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": PROTOCOL,
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": self.password(user),
            "KAFKA_SSL_CAFILE": str(self.ca_file),
        }

    def service_settings(self, user: str = ADMIN, **overrides: Any) -> ServiceSettings:
        """ServiceSettings as a service connecting as `user` reads them (for in-process
        brokers in tests: ketenbus.kit.broker.security(kafka.service_settings()))."""
        fields = {key.lower(): value for key, value in self.service_environment(user).items()}
        return ServiceSettings(**fields, **overrides)


def _external_client_options(bootstrap: str) -> dict[str, Any]:
    # Read as the services read their settings, so tests and tools connect as they do.
    return client_options(ServiceSettings(kafka_bootstrap_servers=bootstrap))
