"""The stack's own certificate authority, and the certificate its Kafka brokers present.

Generated once per stack home under `<home>/kafka/tls/`: `ca.pem` (what clients trust),
`ca-key.pem` and `broker.pem` (the brokers' private key, certificate and chain, as Kafka's PEM
keystore reads it), the keys with mode 0600. The broker certificate names 127.0.0.1 and
localhost, the only addresses the stack listens on, so clients verify the host name as they
would in production. Brokers also authenticate to each other's controller listener with it
(mutual TLS); its subject is the principal `User:kafka-broker`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ketenbus.devstack.private_files import write_private

BROKER_PRINCIPAL = "kafka-broker"
_VALID_FOR = dt.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    ca_key: Path
    broker: Path  # private key (PKCS#8), certificate, CA certificate


def files(directory: Path) -> TlsFiles:
    return TlsFiles(directory / "ca.pem", directory / "ca-key.pem", directory / "broker.pem")


def load_or_create(directory: Path) -> TlsFiles:
    """The CA and broker certificate in `directory`, created when missing."""
    wanted = files(directory)
    if wanted.ca.exists() and wanted.broker.exists():
        return wanted
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ketenbus stack CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_PRINCIPAL)]))
        .issuer_name(ca_name)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    write_private(wanted.ca_key, _pkcs8(ca_key))
    write_private(
        wanted.broker,
        _pkcs8(broker_key) + broker_cert.public_bytes(pem) + ca_cert.public_bytes(pem),
    )
    wanted.ca.write_bytes(ca_cert.public_bytes(pem))
    return wanted


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
