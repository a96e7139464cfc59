"""NodeSettings: typed, and refusing to start on a plaintext key or a weak password."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from eth_utils import to_checksum_address

from oracle.errors import ConfigError
from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore
from oracle.node.settings import load_settings, load_settings_or_exit
from oracle.node.testing import NODE_KEY, REPO_ROOT

MARKET = "0x" + "42" * 20
STRONG = "correct horse battery staple"
BASE = {"GPURENT_NODE_CHAIN_ID": "31337", "GPURENT_NODE_MARKET_ADDRESS": MARKET}


@pytest.fixture
def keystore(tmp_path):
    path = tmp_path / "node.json"
    new_keystore(path, STRONG, private_key=NODE_KEY, **CHEAPEST_ACCEPTED_KDF)
    return path


def env(**values) -> dict:
    return {**BASE, **{"GPURENT_NODE_" + k.upper(): str(v) for k, v in values.items()}}


def test_settings_load_a_keystore_with_a_strong_password(keystore, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text(STRONG + "\n")
    settings = load_settings(env=env(keystore_path=keystore, keystore_password_file=password_file,
                                     peers="http://a:1, http://b:2", signer_set_version=3))
    assert settings.load_node_key() == NODE_KEY
    assert settings.peers == ("http://a:1", "http://b:2")
    assert settings.signer_set_version == 3
    assert not settings.dev_mode


def test_settings_read_rentals_and_a_toml_file(tmp_path, keystore):
    config = tmp_path / "node.toml"
    config.write_text(f'chain_id = 5\nmarket_address = "{MARKET}"\nkeystore_path = "{keystore.name}"\n'
                      f'[[rentals]]\nrental_id = 7\nagent = "0x{"ab" * 20}"\ngpu_count = 8\n'
                      f'grid_intensity_g_per_kwh = 300\nstart_ms = 1\n')
    settings = load_settings(config, env={"GPURENT_NODE_KEYSTORE_PASSWORD": STRONG,
                                          "GPURENT_NODE_CHAIN_ID": "6"})
    assert settings.chain_id == 6  # env wins over the file
    assert settings.keystore_path == keystore  # relative to the file
    assert settings.rentals[0].gpu_count == 8
    assert settings.rentals[0].agent == to_checksum_address("0x" + "ab" * 20)


@pytest.mark.parametrize(
    "values, words",
    [
        ({"private_key": "0x" + NODE_KEY.hex()}, "plaintext private_key outside dev mode"),
        ({}, "keystore_path is required"),
        ({"keystore_path": "/nonexistent/node.json", "keystore_password": STRONG}, "keystore not found"),
        ({"keystore_path": "KEYSTORE"}, "empty or default"),
        ({"keystore_path": "KEYSTORE", "keystore_password": "changeme"}, "empty or default"),
        ({"keystore_path": "KEYSTORE", "keystore_password": "short"}, "shorter than"),
        ({"keystore_path": "KEYSTORE", "keystore_password": STRONG, "fault": "kill_after_record"}, "needs dev_mode"),
        ({"keystore_path": "KEYSTORE", "keystore_password": STRONG, "market_address": "0x12"}, "20-byte hex"),
        ({"keystore_path": "KEYSTORE", "keystore_password": STRONG, "port": "99999"}, "port"),
        ({"keystore_path": "KEYSTORE", "keystore_password": STRONG, "no_such": "1"}, "unknown setting"),
    ],
    ids=["plaintext-key", "no-keystore", "missing-keystore", "empty-password", "default-password",
         "short-password", "fault-injection", "bad-address", "bad-port", "unknown-setting"],
)
def test_settings_refuse_unsafe_values_outside_dev_mode(keystore, values, words):
    values = {k: (str(keystore) if v == "KEYSTORE" else v) for k, v in values.items()}
    with pytest.raises(ConfigError, match=words):
        load_settings(env=env(**values))


def test_dev_mode_accepts_a_plaintext_key():
    settings = load_settings(env=env(dev_mode="true", private_key="0x" + NODE_KEY.hex()))
    assert settings.load_node_key() == NODE_KEY


def test_a_wrong_keystore_password_is_a_config_error(keystore):
    settings = load_settings(env=env(keystore_path=keystore, keystore_password=STRONG + "!"))
    with pytest.raises(ConfigError, match="wrong password"):
        settings.load_node_key()


def test_load_settings_or_exit_exits_with_the_reason(monkeypatch):
    for name in list(os.environ):
        if name.startswith("GPURENT_NODE_"):
            monkeypatch.delenv(name)
    for name, value in env(private_key="0x" + NODE_KEY.hex()).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        load_settings_or_exit()
    assert "plaintext private_key" in str(exited.value.code)


def test_the_node_command_refuses_a_plaintext_key_without_a_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "oracle.node"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GPURENT_NODE_")},
             **env(private_key="0x" + NODE_KEY.hex())},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "refusing a plaintext private_key outside dev mode" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- the chain side: rpc_url and what only means something with it ------------------------------


def test_chain_settings_defaults_and_the_urls_signatures_are_collected_from(keystore):
    settings = load_settings(env=env(keystore_path=keystore, keystore_password=STRONG, chain_id=1,
                                     rpc_url="https://rpc.example.org/v3/SECRET", host="0.0.0.0", port=8711,
                                     peers="http://b:2/, http://127.0.0.1:8711"))
    assert settings.follows_chain and settings.submits_settlements
    assert settings.confirmations == 2 and settings.chain_start_block == 0
    assert settings.max_fee_per_gas_cap_wei == 500 * 10**9
    assert settings.node_url == "http://127.0.0.1:8711"  # a wildcard host is reached on loopback
    assert settings.aggregation_urls() == ["http://127.0.0.1:8711", "http://b:2"]  # self first, no duplicate
    quiet = load_settings(env=env(keystore_path=keystore, keystore_password=STRONG, chain_id=1,
                                  rpc_url="http://127.0.0.1:8545", submit_settlements="false",
                                  self_url="https://node-a.example.org/", chain_start_block=123))
    assert quiet.follows_chain and not quiet.submits_settlements
    assert quiet.node_url == "https://node-a.example.org"
    assert quiet.chain_start_block == 123


def test_without_rpc_url_the_node_meters_static_rentals_only(keystore):
    settings = load_settings(env=env(keystore_path=keystore, keystore_password=STRONG))
    assert not settings.follows_chain and not settings.submits_settlements
    from oracle.node.server import describe_chain

    assert describe_chain(settings).startswith("static rentals only")


@pytest.mark.parametrize(
    "values, words",
    [
        ({"confirmations": "3"}, "confirmations set but rpc_url is not"),
        ({"settle_interval_s": "5", "submit_settlements": "true"},
         "settle_interval_s, submit_settlements set but rpc_url is not"),
        ({"rpc_url": "ws://127.0.0.1:8546"}, "not an http"),
        ({"rpc_url": "http://127.0.0.1:8545", "self_url": "node-a:8700"}, "not an http"),
        ({"rpc_url": "http://127.0.0.1:8545", "chain_id": "1", "confirmations": "0"}, "confirmations = 0"),
        ({"rpc_url": "http://127.0.0.1:8545", "confirmations": "-1"}, "confirmations"),
        ({"rpc_url": "http://127.0.0.1:8545", "max_fee_per_gas_cap_wei": "0"}, "max_fee_per_gas_cap_wei"),
        ({"rpc_url": "http://127.0.0.1:8545", "settle_interval_s": "0"}, "settle_interval_s"),
        ({"rpc_url": "http://127.0.0.1:8545", "chain_start_block": "-5"}, "chain_start_block"),
        ({"rpc_url": "http://127.0.0.1:8545", "submit_settlements": "maybe"}, "submit_settlements"),
    ],
    ids=["chain-field-without-rpc", "two-chain-fields-without-rpc", "ws-rpc", "bad-self-url",
         "zero-confirmations-on-a-public-chain", "negative-confirmations", "zero-fee-cap", "zero-interval",
         "negative-start-block", "not-a-bool"],
)
def test_chain_settings_refusals(keystore, values, words):
    with pytest.raises(ConfigError, match=words):
        load_settings(env=env(keystore_path=keystore, keystore_password=STRONG, **values))


def test_zero_confirmations_is_for_local_dev_chains_or_dev_mode(keystore):
    local = load_settings(env=env(keystore_path=keystore, keystore_password=STRONG, chain_id=31337,
                                  rpc_url="http://127.0.0.1:8545", confirmations=0))
    assert local.confirmations == 0
    dev = load_settings(env=env(dev_mode="true", private_key="0x" + NODE_KEY.hex(), chain_id=11155111,
                                rpc_url="http://127.0.0.1:8545", confirmations=0))
    assert dev.confirmations == 0


def test_rpc_credentials_stay_out_of_messages(keystore):
    from oracle.node.settings import redact_url

    assert redact_url("https://user:pw@eth.example.org:8443/v3/SECRET?x=1") == "https://eth.example.org:8443/..."
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    with pytest.raises(ConfigError) as refused:
        load_settings(env=env(keystore_path=keystore, keystore_password=STRONG, rpc_url="ftp://host/v3/SECRET"))
    assert "SECRET" not in str(refused.value)
