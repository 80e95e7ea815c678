"""API keys for the organisations of the local chain, made once per stack home.

The services get only the hashes (`api-keys.jsonl`); the keys themselves are kept in
`api-tokens.json` (mode 0600) for the demo, the tests and a developer with curl.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ketenbus.kit.auth import append_record, issue_key

KEYS_FILE = "api-keys.jsonl"
TOKENS_FILE = "api-tokens.json"

WELFARE_ORGANISATIONS = ("welzijn-utrecht", "welzijn-amersfoort", "welzijn-heuvelrug")
REFERRERS = ("huisarts-de-linde", "huisarts-oosterpoort", "gemeente-utrecht")
DEBT_COUNSELLING = ("schuldhulp-midden",)
# Creditors that send early-warning signals (Wgs): a housing corporation, an energy supplier,
# a water company and a health insurer, each over the HTTP front door.
CREDITORS = (
    "woonstichting-domstad",
    "energie-stroomlijn",
    "waterbedrijf-vallei",
    "zorgverzekeraar-zuid",
)
# Partners that run a Kafka client: they get an inbound and an outbound topic of their own
# (the demo stack creates them; deploy/k8s/partners.txt lists the same ones).
KAFKA_PARTNERS = ("huisarts-de-linde", "huisarts-oosterpoort", "schuldhulp-midden")

# role -> scopes. A worker's key also names the worker, so actions are attributable.
ROLES: dict[str, tuple[str, ...]] = {
    "referrer": ("referrals:write", "referrals:read"),
    # A worker also records the client's consents and erasure requests at intake, and the
    # outreach after an early-warning signal.
    "worker": (
        "trajectories:write",
        "trajectories:read",
        "clients:write",
        "clients:read",
        "signals:write",
        "signals:read",
    ),
    "creditor": ("signals:submit",),
    # The module catalogue only: a client's enrolments open with that client's portal token,
    # which their worker issues (learning's `portal()`), never with an organisation's key.
    "portal": ("enrolments:read",),
    "manager": ("analytics:read", "trajectories:read"),
    "notifications": ("notifications:write", "notifications:read"),
}


def _grants() -> list[tuple[str, str, str | None]]:
    grants: list[tuple[str, str, str | None]] = [(org, "referrer", None) for org in REFERRERS]
    grants += [(org, "creditor", None) for org in CREDITORS]
    for org in WELFARE_ORGANISATIONS:
        grants += [
            (org, "referrer", None),  # self-registration arrives through the organisation
            (org, "worker", f"mw.{org.removeprefix('welzijn-')}"),
            (org, "portal", None),
            (org, "manager", None),
            (org, "notifications", None),
        ]
    return grants


def provision(home: Path) -> Path:
    """The hashed key file for the services; creates keys the first time."""
    keys_path, tokens_path = home / KEYS_FILE, home / TOKENS_FILE
    if keys_path.exists() and tokens_path.exists():
        return keys_path
    keys_path.unlink(missing_ok=True)
    tokens: dict[str, str] = {}
    for organisation, role, worker in _grants():
        token, record = issue_key(organisation, ROLES[role], worker, label=role)
        append_record(keys_path, record)
        tokens[f"{organisation}/{role}"] = token
    descriptor = os.open(tokens_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(tokens, file, indent=2)
    return keys_path


def token(home: Path, organisation: str, role: str) -> str:
    """The key an organisation uses in a role, e.g. token(home, "huisarts-de-linde", "referrer")."""
    tokens = _tokens(home / TOKENS_FILE)
    try:
        return tokens[f"{organisation}/{role}"]
    except KeyError:
        raise KeyError(f"no {role} key for {organisation} in {home / TOKENS_FILE}") from None


# The key file as last read, by path: the demo and the benchmark ask for a key at every
# request, and the file changes only when a home is provisioned anew (its size and time).
_read: dict[Path, tuple[tuple[int, int], dict[str, str]]] = {}


def _tokens(path: Path) -> dict[str, str]:
    stat = path.stat()
    version = (stat.st_mtime_ns, stat.st_size)
    known = _read.get(path)
    if known is None or known[0] != version:
        known = _read[path] = (version, json.loads(path.read_text(encoding="utf-8")))
    return known[1]
