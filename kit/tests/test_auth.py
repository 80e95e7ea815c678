"""API keys: hashed, scoped, expiring, and revoked without a restart (no servers needed)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ketenbus.kit.auth import (
    KeyRecord,
    Keyring,
    append_record,
    issue_key,
    main,
    read_records,
    write_records,
)


def test_a_key_expires_at_its_moment():
    token, record = issue_key("welzijn-utrecht", ["referrals:read"], valid_for=timedelta(days=30))
    assert record.expires_at is not None
    now = [record.expires_at - timedelta(seconds=1)]
    keyring = Keyring([record], now=lambda: now[0])
    assert keyring.identify(token) is not None
    now[0] = record.expires_at
    assert keyring.identify(token) is None


def test_every_key_issued_expires_within_a_year_by_default():
    _, record = issue_key("welzijn-utrecht", ["referrals:read"])
    assert record.expires_at is not None
    assert record.expires_at - datetime.now(UTC) <= timedelta(days=365)


def test_a_revoked_key_is_refused_once_the_file_is_read_again(tmp_path: Path, capsys):
    keys = tmp_path / "api-keys.jsonl"
    kept_token, kept = issue_key("welzijn-utrecht", ["referrals:read"])
    token, record = issue_key("huisarts-de-linde", ["referrals:write"])
    append_record(keys, kept)
    append_record(keys, record)
    keyring = Keyring.from_file(keys, reload_seconds=0.0)
    assert keyring.identify(token) is not None

    assert main(["revoke", "--file", str(keys), "--key-id", record.key_id]) == 0
    assert keyring.identify(token) is None  # no restart: the file changed, it is read again
    assert keyring.identify(kept_token) is not None
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    [revoked] = [r for r in read_records(keys) if r.key_id == record.key_id]
    assert revoked.revoked_at is not None and revoked.sha256 == record.sha256
    assert main(["revoke", "--file", str(keys), "--key-id", "000000000000"]) == 1
    main(["list", "--file", str(keys)])
    listed = capsys.readouterr().out
    assert record.key_id in listed and "revoked" in listed
    assert record.sha256 not in listed and token not in listed


def test_the_file_is_looked_at_at_most_every_reload_interval(tmp_path: Path):
    keys = tmp_path / "api-keys.jsonl"
    token, record = issue_key("welzijn-utrecht", ["referrals:read"])
    write_records(keys, [record])
    keyring = Keyring.from_file(keys, reload_seconds=3600.0)
    write_records(keys, [record.model_copy(update={"revoked_at": datetime.now(UTC)})])
    assert keyring.identify(token) is not None  # not looked at again yet
    keyring._next_look = 0.0  # the interval has passed
    assert keyring.identify(token) is None


def test_a_half_written_file_keeps_the_keys_read_before_and_a_removed_one_refuses_all(
    tmp_path: Path,
):
    keys = tmp_path / "api-keys.jsonl"
    token, record = issue_key("welzijn-utrecht", ["referrals:read"])
    write_records(keys, [record])
    keyring = Keyring.from_file(keys, reload_seconds=0.0)
    keys.write_text(record.model_dump_json()[:40])
    assert keyring.identify(token) is not None
    keys.unlink()
    assert keyring.identify(token) is None


def test_an_older_record_without_expiry_still_loads():
    _, record = issue_key("welzijn-utrecht", ["referrals:read"])
    older = record.model_dump(exclude={"expires_at", "revoked_at"})
    assert KeyRecord.model_validate(older).valid_at(datetime.now(UTC))
