"""Plain aiokafka clients connect with the same security as the service's broker."""

from __future__ import annotations

import ssl

import pytest

from ketenbus.kit.broker import client_options
from ketenbus.kit.settings import ServiceSettings


def test_plaintext_needs_nothing_more():
    options = client_options(ServiceSettings(kafka_bootstrap_servers="127.0.0.1:9092"))
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_carries_mechanism_credentials_and_tls():
    settings = ServiceSettings(
        kafka_bootstrap_servers="kafka:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="ketenbus-analytics",
        kafka_sasl_password="s3cret",
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "ketenbus-analytics"
    assert options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_without_credentials_is_refused_clearly():
    settings = ServiceSettings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
        client_options(settings)
