"""Encrypted keystores: round trip, file mode, and refusals outside dev mode."""

from __future__ import annotations

import os
import stat

import pytest
from eth_account import Account

from oracle.errors import KeystoreError
from oracle.keys import CHEAPEST_ACCEPTED_KDF, MIN_PBKDF2_ITERATIONS, MIN_SCRYPT_N, load_keystore, new_keystore

CHEAP = CHEAPEST_ACCEPTED_KDF  # the default scrypt costs ~1 s per call
PASSWORD = "correct horse battery staple"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def test_new_keystore_round_trips_with_mode_0600(tmp_path):
    path = tmp_path / "agent.json"
    address = new_keystore(path, PASSWORD, private_key=KEY, **CHEAP)
    assert address == Account.from_key(KEY).address
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keystore(path, PASSWORD) == KEY


def test_new_keystore_makes_a_fresh_key_when_none_is_given(tmp_path):
    a = new_keystore(tmp_path / "a.json", PASSWORD, **CHEAP)
    b = new_keystore(tmp_path / "b.json", PASSWORD, **CHEAP)
    assert a != b
    assert Account.from_key(load_keystore(tmp_path / "a.json", PASSWORD)).address == a


def test_new_keystore_never_overwrites(tmp_path):
    path = tmp_path / "agent.json"
    new_keystore(path, PASSWORD, private_key=KEY, **CHEAP)
    with pytest.raises(KeystoreError):
        new_keystore(path, PASSWORD, **CHEAP)
    assert load_keystore(path, PASSWORD) == KEY


@pytest.mark.parametrize("password", ["", "password", "changeme", "Password", " secret ", "short"])
def test_unsafe_passwords_are_refused_outside_dev_mode(tmp_path, password):
    with pytest.raises(KeystoreError):
        new_keystore(tmp_path / "k.json", password, **CHEAP)
    assert not (tmp_path / "k.json").exists()
    new_keystore(tmp_path / "k.json", password, private_key=KEY, dev=True, **CHEAP)
    with pytest.raises(KeystoreError):
        load_keystore(tmp_path / "k.json", password)
    assert load_keystore(tmp_path / "k.json", password, dev=True) == KEY


def test_wrong_password_is_a_keystore_error(tmp_path):
    path = tmp_path / "agent.json"
    new_keystore(path, PASSWORD, private_key=KEY, **CHEAP)
    with pytest.raises(KeystoreError):
        load_keystore(path, PASSWORD + "!")


@pytest.mark.parametrize("wrong", ["abc", "", "password"])
def test_a_short_wrong_password_is_answered_as_wrong_not_with_the_password_policy(tmp_path, wrong):
    path = tmp_path / "agent.json"
    new_keystore(path, PASSWORD, private_key=KEY, **CHEAP)
    with pytest.raises(KeystoreError, match="wrong password") as info:
        load_keystore(path, wrong)
    assert "password must" not in str(info.value) and "at least" not in str(info.value)


def test_group_readable_keystore_is_refused_outside_dev_mode(tmp_path):
    path = tmp_path / "agent.json"
    new_keystore(path, PASSWORD, private_key=KEY, **CHEAP)
    os.chmod(path, 0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        load_keystore(path, PASSWORD)
    assert load_keystore(path, PASSWORD, dev=True) == KEY


@pytest.mark.parametrize("content", [KEY.hex(), "0x" + KEY.hex(), '{"address": "x"}', "[]"])
def test_plaintext_or_foreign_files_are_not_keystores(tmp_path, content):
    path = tmp_path / "key.txt"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeystoreError):
        load_keystore(path, PASSWORD)


def test_missing_keystore_is_a_keystore_error(tmp_path):
    with pytest.raises(KeystoreError):
        load_keystore(tmp_path / "nope.json", PASSWORD)


@pytest.mark.parametrize("kdf", [
    dict(kdf="pbkdf2", iterations=2),  # the finding: a 2-iteration KDF loaded in a production node
    dict(kdf="pbkdf2", iterations=MIN_PBKDF2_ITERATIONS - 1),
    dict(kdf="scrypt", iterations=2),
    dict(kdf="scrypt", iterations=MIN_SCRYPT_N // 2),
])
def test_weak_kdf_keystore_is_refused_outside_dev_mode_with_a_clear_message(tmp_path, kdf):
    path = tmp_path / "weak.json"
    new_keystore(path, PASSWORD, private_key=KEY, **kdf)
    with pytest.raises(KeystoreError, match="outside dev mode: its (scrypt|pbkdf2) KDF .* too cheap|iterations"):
        load_keystore(path, PASSWORD)
    assert load_keystore(path, PASSWORD, dev=True) == KEY


def test_weak_kdf_node_keystore_stops_a_production_node(tmp_path):
    from oracle.errors import ConfigError
    from oracle.node.settings import load_settings

    path = tmp_path / "node.json"
    new_keystore(path, PASSWORD, private_key=KEY, kdf="pbkdf2", iterations=2)
    settings = load_settings(env={}, chain_id=31337, market_address="0x" + "42" * 20, keystore_path=path,
                             keystore_password=PASSWORD, db_path=tmp_path / "n.sqlite3")
    with pytest.raises(ConfigError, match="pbkdf2 KDF has 2 iterations"):
        settings.load_node_key()


def test_scrypt_at_the_threshold_and_the_default_kdf_are_accepted(tmp_path):
    new_keystore(tmp_path / "s.json", PASSWORD, private_key=KEY, kdf="scrypt", iterations=MIN_SCRYPT_N)
    assert load_keystore(tmp_path / "s.json", PASSWORD) == KEY
