"""Analytics' settings: the shared ones plus the key for benchmark pseudonyms."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from ketenbus.kit.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    http_port: int = 8005
    # Keyed hash of an organisation's name for the benchmark: stable, not readable back.
    benchmark_pseudonym_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("BENCHMARK_PSEUDONYM_KEY", "PSEUDONYM_KEY")
    )
