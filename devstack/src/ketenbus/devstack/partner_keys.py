"""The keys partner organisations share with the chain, one per partner, per stack home.

A partner seals a client's details with its key before it refers on its inbound topic, and
opens with it the contact the chain seals for it at a hand-off. Kept in
`<home>/partner-keys.json` (mode 0600) for the services, the partner simulator and tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ketenbus.contracts import sealing
from ketenbus.devstack.private_files import write_private

FILE_NAME = "partner-keys.json"


def load_or_create(home: Path, partners: Iterable[str]) -> dict[str, str]:
    """Each partner's key (URL-safe base64), generating the ones that do not exist yet."""
    path = home / FILE_NAME
    keys: dict[str, str] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    missing = [org for org in partners if org not in keys]
    if missing:
        keys.update({org: sealing.key_to_text(sealing.new_key()) for org in missing})
        home.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(keys, indent=2))
    return {org: keys[org] for org in partners}


def key(home: Path, partner: str) -> bytes:
    """The key a partner seals and opens with, e.g. key(home, "huisarts-de-linde")."""
    return sealing.key_from_text(load_or_create(home, [partner])[partner])
