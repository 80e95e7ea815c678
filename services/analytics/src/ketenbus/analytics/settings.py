"""Analytics' settings: the shared ones plus the key for benchmark pseudonyms."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from ketenbus.contracts.values import Language
from ketenbus.kit.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    http_port: int = 8005
    # Keyed hash of an organisation's name for the benchmark: stable, not readable back.
    benchmark_pseudonym_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("BENCHMARK_PSEUDONYM_KEY", "PSEUDONYM_KEY")
    )
    # The language of the dashboard, the figures' labels and the CSV headers when a request
    # does not ask for one (`?lang=`); unset, the browser's Accept-Language decides, else Dutch.
    analytics_language: Language | None = Field(
        default=None, validation_alias=AliasChoices("ANALYTICS_LANGUAGE")
    )
