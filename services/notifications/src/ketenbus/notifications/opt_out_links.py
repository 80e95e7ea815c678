"""Opt-out links: a client stops a channel with one link, without logging in.

The token names the client reference and the channel and carries an HMAC, so nobody can
stop another client's messages by guessing. It holds no personal data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from ketenbus.contracts.values import Channel

_SIZE = 16


def link_key(contact_key: bytes) -> bytes:
    return hmac.new(contact_key, b"ketenbus-notifications/opt-out-links", hashlib.sha256).digest()


def _mac(key: bytes, client_ref: str, channel: Channel) -> str:
    digest = hmac.new(key, f"{client_ref}|{channel.value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_SIZE]).decode().rstrip("=")


def token(key: bytes, client_ref: str, channel: Channel) -> str:
    return f"{client_ref}.{channel.value}.{_mac(key, client_ref, channel)}"


def read_token(key: bytes, text: str) -> tuple[str, Channel] | None:
    """(client_ref, channel) if the token is genuine, else None."""
    parts = text.split(".")
    if len(parts) != 3:
        return None
    client_ref, channel_text, mac = parts
    try:
        channel = Channel(channel_text)
    except ValueError:
        return None
    if not hmac.compare_digest(mac, _mac(key, client_ref, channel)):
        return None
    return client_ref, channel
