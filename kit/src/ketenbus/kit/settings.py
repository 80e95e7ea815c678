"""Settings every service reads from its environment. Every address is a setting.

Pointed at Apache Kafka and MongoDB instead of the embedded stack, the same services run
unchanged: only these values differ.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    service_name: str = "ketenbus"
    home: Path = Field(default=Path(".ketenbus"), validation_alias="KETENBUS_HOME")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_partitions: int = Field(default=3, ge=1)

    mongodb_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017/?directConnection=true")
    mongodb_database: str | None = None

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    api_keys_file: Path | None = None
    # How often (real seconds, at most) the key file is looked at for changes: revocation
    # reaches every replica within this (plus the file's own propagation).
    api_keys_reload_seconds: float = Field(default=10.0, gt=0, le=60)

    outbox_poll_seconds: float = Field(default=0.2, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    # Events handled in one transaction; 1 turns batching off.
    consumer_batch_size: int = Field(default=100, ge=1, le=1000)
    # How long the group waits for a silent member (a replica killed, a frozen process)
    # before handing its partitions to the others; heartbeats go every third of it. Kafka
    # refuses less than its group.min.session.timeout.ms (6 s by default).
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    # How long the broker may hold a consumer's fetch to gather at least
    # consumer_fetch_min_bytes (0: answered as soon as one record is there). Under a steady
    # trickle this turns many fetches, transactions and commits of a few events into fewer
    # of more (benchmarks/REPORT.md); a backlog larger than the minimum is answered at once.
    # Only while events flow: after an empty fetch the next one waits for the first event
    # (kit.fetch_pacing).
    consumer_fetch_wait_ms: int = Field(default=50, ge=0, le=500)
    consumer_fetch_min_bytes: int = Field(default=32 * 1024, ge=1)
    handler_attempts: int = Field(default=5, ge=1)
    retry_base_seconds: float = Field(default=0.1, gt=0)
    retry_max_seconds: float = Field(default=5.0, gt=0)

    # An accelerated clock for demos and tests: simulated time starts at clock_start when
    # the real clock reads clock_anchor, and runs clock_speed times as fast.
    clock_start: AwareDatetime | None = Field(default=None, validation_alias="KETENBUS_CLOCK_START")
    clock_anchor: float | None = Field(default=None, validation_alias="KETENBUS_CLOCK_ANCHOR")
    clock_speed: float = Field(default=1.0, gt=0, validation_alias="KETENBUS_CLOCK_SPEED")

    @property
    def database_name(self) -> str:
        return self.mongodb_database or f"ketenbus_{self.service_name}"

    @property
    def clock_epoch(self) -> tuple[datetime, float] | None:
        if self.clock_start is None:
            return None
        return self.clock_start, self.clock_anchor or 0.0
