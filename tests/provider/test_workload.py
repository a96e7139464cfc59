"""The workload spec, its on-chain commitment and its ECIES envelope (pure; no Docker, no chain)."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_hash.auto import keccak

from oracle.provider import ProviderError
from oracle.provider.workload import (
    WorkloadSpec,
    address_of_public_key,
    open_workload,
    parse_spec,
    public_key_of,
    seal,
    seal_for_address,
    unseal,
)

AGENT_KEY = bytes.fromhex("11" * 32)
OTHER_KEY = bytes.fromhex("22" * 32)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl renter@laptop"


def spec(**kw) -> WorkloadSpec:
    return WorkloadSpec(**{"image": "pytorch/pytorch:2.4.0-cuda12.4", "cmd": ["python", "train.py"],
                           "env": {"WANDB_API_KEY": "secret"}, "ssh_public_key": SSH_KEY, **kw})


def test_workload_hash_is_keccak_of_the_canonical_json():
    s = spec()
    assert s.workload_hash() == keccak(s.canonical_bytes())
    assert s.canonical_bytes().startswith(b'{"cmd":["python","train.py"],"env":{"WANDB_API_KEY":"secret"}')


def test_the_salt_makes_the_public_hash_of_a_guessable_spec_unpredictable():
    a, b = spec(), spec()
    assert a.salt != b.salt and a.workload_hash() != b.workload_hash()


def test_parse_spec_refuses_non_canonical_bytes():
    s = spec()
    assert parse_spec(s.canonical_bytes()) == s
    pretty = s.model_dump_json(indent=2).encode()
    with pytest.raises(ProviderError, match="canonical"):
        parse_spec(pretty)


@pytest.mark.parametrize("bad", [{"env": {"A=B": "x"}}, {"env": {"GPURENT_RENTAL_ID": "9"}},
                                 {"env": {"NVIDIA_VISIBLE_DEVICES": "all"}}, {"env": {"NVIDIA_DRIVER_CAPABILITIES": "all"}},
                                 {"ssh_public_key": "not a key"}, {"ssh_public_key": SSH_KEY + "\nssh-rsa AAAA x"},
                                 {"image": ""}, {"preset": "desktop"}, {"salt": "0x12"}])
def test_invalid_specs_are_refused(bad):
    with pytest.raises(ValueError):
        spec(**bad)


def test_preset_shell_keeps_the_container_up_unless_a_command_is_given():
    assert spec(cmd=None, preset="shell").command()[0] == "sh"
    assert spec(preset="shell").command() == ["python", "train.py"]
    assert spec(cmd=None).command() is None  # the image's own command


def test_sealed_spec_opens_only_with_the_agent_key_and_matches_the_commitment():
    s = spec()
    sealed = seal(public_key_of(AGENT_KEY), s.canonical_bytes())
    assert b"WANDB_API_KEY" not in sealed and b"secret" not in sealed
    assert open_workload(AGENT_KEY, sealed, s.workload_hash()) == s
    with pytest.raises(ProviderError, match="cannot open"):
        open_workload(OTHER_KEY, sealed, s.workload_hash())


def test_a_spec_that_is_not_the_committed_one_is_refused():
    committed, swapped = spec(), spec(image="miner:latest")
    sealed = seal(public_key_of(AGENT_KEY), swapped.canonical_bytes())
    with pytest.raises(ProviderError, match="not the rental's committed workloadHash"):
        open_workload(AGENT_KEY, sealed, committed.workload_hash())
    with pytest.raises(ProviderError, match="no workload"):
        open_workload(AGENT_KEY, sealed, b"\0" * 32)


def test_a_tampered_envelope_is_refused():
    sealed = bytearray(seal(public_key_of(AGENT_KEY), spec().canonical_bytes()))
    sealed[-1] ^= 1
    with pytest.raises(ProviderError):
        unseal(AGENT_KEY, bytes(sealed))


def test_the_renter_seals_only_to_the_offers_agent_key():
    agent = Account.from_key(AGENT_KEY).address
    assert address_of_public_key(public_key_of(AGENT_KEY)) == agent
    sealed = seal_for_address(public_key_of(AGENT_KEY), agent, b"x")
    assert unseal(AGENT_KEY, sealed) == b"x"
    with pytest.raises(ProviderError, match="not to the offer's agent"):
        seal_for_address(public_key_of(OTHER_KEY), agent, b"x")
