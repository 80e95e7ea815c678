import pytest

from ketenbus.contracts.sealing import (
    SealBroken,
    key_from_text,
    key_to_text,
    new_key,
    open_sealed,
    seal,
)


def test_only_the_recipient_opens_a_sealed_field():
    data_key, recipient, stranger = new_key(), new_key(), new_key()
    sealed = seal(b"06-12345678", data_key=data_key, key_id="cl_1", recipient_key=recipient)

    assert b"0612345678" not in sealed.model_dump_json().encode()
    assert open_sealed(sealed, recipient) == b"06-12345678"
    with pytest.raises(SealBroken):
        open_sealed(sealed, stranger)


def test_a_tampered_seal_is_refused():
    recipient = new_key()
    sealed = seal(b"x", data_key=new_key(), key_id="cl_1", recipient_key=recipient)
    moved = sealed.model_copy(update={"key_id": "cl_2"})
    with pytest.raises(SealBroken):
        open_sealed(moved, recipient)


def test_keys_travel_as_text_and_must_be_full_length():
    key = new_key()
    assert key_from_text(key_to_text(key)) == key
    with pytest.raises(ValueError, match="32 bytes"):
        key_from_text(key_to_text(b"short"))
