"""Sealed fields: personal data that must cross the bus, readable only by its recipient.

The data is encrypted with the client's own data key (AES-256-GCM); the data key travels
wrapped with a key that only sender and recipient share. A sealed copy therefore stays
readable to whoever holds the recipient key, whatever the owner does with its own copy of
the client's key: shredding that key makes the owner's copy unreadable, not the sealed ones.
Forgetting a sealed copy means deleting it (a recipient on erasure) or letting the topic's
retention remove it.
Partners seal and open with this module alone, so it lives in the contracts package.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ketenbus.contracts.values import Sealed

KEY_BYTES = 32
_NONCE_BYTES = 12


class SealBroken(Exception):
    """The sealed data cannot be opened: wrong key, shredded key or tampered data."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode())


def key_from_text(text: str) -> bytes:
    """A 32-byte key from its urlsafe base64 form, as kept in settings and secrets."""
    key = _unb64(text)
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def key_to_text(key: bytes) -> str:
    return _b64(key)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def encrypt(plaintext: bytes, key: bytes, associated: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, associated)


def decrypt(nonce: bytes, ciphertext: bytes, key: bytes, associated: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated)
    except InvalidTag:
        raise SealBroken("cannot open sealed data with this key") from None


def seal(plaintext: bytes, *, data_key: bytes, key_id: str, recipient_key: bytes) -> Sealed:
    wrap_nonce, wrapped = encrypt(data_key, recipient_key, key_id.encode())
    nonce, ciphertext = encrypt(plaintext, data_key, key_id.encode())
    return Sealed(
        key_id=key_id,
        wrapped_key=_b64(wrap_nonce + wrapped),
        nonce=_b64(nonce),
        ciphertext=_b64(ciphertext),
    )


def unwrap_data_key(sealed: Sealed, recipient_key: bytes) -> bytes:
    blob = _unb64(sealed.wrapped_key)
    return decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], recipient_key, sealed.key_id.encode())


def open_with_data_key(sealed: Sealed, data_key: bytes) -> bytes:
    return decrypt(
        _unb64(sealed.nonce), _unb64(sealed.ciphertext), data_key, sealed.key_id.encode()
    )


def open_sealed(sealed: Sealed, recipient_key: bytes) -> bytes:
    return open_with_data_key(sealed, unwrap_data_key(sealed, recipient_key))
