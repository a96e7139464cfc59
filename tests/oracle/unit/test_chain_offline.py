"""Chain-client logic that needs no chain: error decoding, struct arguments, signature order,
fee bumps, transient-error classification, nonce bookkeeping."""

from __future__ import annotations

import pytest
import requests
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import ContractCustomError, Web3RPCError

from oracle.attestation.eip712 import UsageReport
from oracle.attestation.signing import sign_digest
from oracle.chain.client import pack_signatures, recover, struct_tuple, usage_report_tuple
from oracle.chain.errors import ErrorDecoder
from oracle.chain.tx import NonceManager, TxPolicy, is_transient
from oracle.errors import ChainError

ABI = [
    {"type": "error", "name": "Market_Bad", "inputs": [
        {"name": "who", "type": "address"}, {"name": "amount", "type": "uint256"}, {"name": "tag", "type": "bytes32"}]},
    {"type": "error", "name": "Market_List", "inputs": [{"name": "signers", "type": "address[]"}]},
]


def _data(sig: str, types: list[str], values: list) -> str:
    return "0x" + (keccak(text=sig)[:4] + encode(types, values)).hex()


def test_decoder_names_custom_errors_with_typed_args():
    dec = ErrorDecoder.from_abis(ABI)
    who = "0x" + "ab" * 20
    name, args = dec.decode(_data("Market_Bad(address,uint256,bytes32)", ["address", "uint256", "bytes32"],
                                  [who, 7, b"\x01" * 32]))
    assert name == "Market_Bad"
    assert args == {"who": to_checksum_address(who), "amount": 7, "tag": "0x" + "01" * 32}
    name, args = dec.decode(_data("Market_List(address[])", ["address[]"], [[who]]))
    assert name == "Market_List" and args["signers"][0] == to_checksum_address(who)


def test_decoder_require_panic_unknown_and_empty():
    dec = ErrorDecoder.from_abis(ABI)
    assert dec.decode(_data("Error(string)", ["string"], ["no"])) == ("Error", {"message": "no"})
    name, args = dec.decode(_data("Panic(uint256)", ["uint256"], [0x12]))
    assert name == "Panic" and args["reason"] == "division by zero"
    assert dec.decode("0xdeadbeef")[0] == "UnknownError(0xdeadbeef)"
    assert dec.decode("0x") == ("", {})
    assert dec.decode(None) == ("", {})


REPORT = UsageReport(7, 3, 1_795_743_508, 60, 30, 1_000, 40, 10_000, 2, 5, 1, b"\xaa" * 32, 1)


def test_struct_tuple_accepts_dataclass_snake_and_camel_dicts():
    expected = (7, 3, 1_795_743_508, 60, 30, 1_000, 40, 10_000, 2, 5, 1, b"\xaa" * 32, 1)
    assert usage_report_tuple(REPORT) == expected
    snake = {f: getattr(REPORT, f) for f in REPORT.__dataclass_fields__}
    snake["telemetry_hash"] = "0x" + "aa" * 32
    assert usage_report_tuple(snake) == expected
    camel = {"rentalId": 7, "sequence": 3, "periodEnd": 1_795_743_508, "availableGpuSeconds": 60,
             "busyGpuSeconds": 30, "energyMillijoules": 1_000, "carbonMilligrams": 40, "uptimeBps": 10_000,
             "faultFlags": 2, "challengesPassed": 5, "challengesFailed": 1, "telemetryHash": b"\xaa" * 32,
             "signerSetVersion": 1}
    assert usage_report_tuple(camel) == expected
    with pytest.raises(ChainError):
        usage_report_tuple({**camel, "telemetryHash": b"\xaa" * 31})
    with pytest.raises(ChainError):
        usage_report_tuple({k: v for k, v in camel.items() if k != "sequence"})
    assert struct_tuple({"gpu_model": "NVIDIA H100"}, ["gpu_model"])[0] == b"NVIDIA H100".ljust(32, b"\0")


def test_pack_signatures_orders_ascending_and_drops_duplicates():
    digest = keccak(b"report")
    keys = [bytes([i]) * 32 for i in (5, 6, 7)]
    sigs = [sign_digest(k, digest) for k in keys]
    packed = pack_signatures(digest, sigs + [sigs[0]])
    assert len(packed) == 65 * 3
    signers = [recover(digest, packed[i:i + 65]) for i in range(0, len(packed), 65)]
    assert signers == sorted(signers, key=lambda a: int(a, 16))
    assert set(signers) == {Account.from_key(k).address for k in keys}


def test_fee_bump_is_at_least_ten_percent_and_respects_the_cap():
    from oracle.chain.txpolicy import bumped_fees

    policy = TxPolicy(max_fee_per_gas_cap_wei=1_200)
    bumped = bumped_fees({"maxFeePerGas": 1_000, "maxPriorityFeePerGas": 100}, policy)
    assert bumped == {"maxFeePerGas": 1_125, "maxPriorityFeePerGas": 112}
    assert bumped_fees({"maxFeePerGas": 1_100, "maxPriorityFeePerGas": 100}, policy) is None  # 1237 > cap
    assert bumped_fees({"gasPrice": 800}, policy) == {"gasPrice": 900}


def test_transient_classification():
    assert is_transient(requests.ConnectionError("refused"))
    assert is_transient(requests.Timeout("slow"))
    response = requests.Response()
    response.status_code = 503
    assert is_transient(requests.HTTPError(response=response))
    response.status_code = 400
    assert not is_transient(requests.HTTPError(response=response))
    assert is_transient(Web3RPCError("header not found"))
    assert not is_transient(Web3RPCError("nonce too low"))
    assert not is_transient(ContractCustomError("0x12345678", data="0x12345678"))


def test_nonce_manager_trusts_its_counter_only_while_its_tx_is_known():
    nm = NonceManager(None, "0x" + "00" * 20)
    assert nm.next_nonce(5, lambda h: True) == 5
    nm.consumed(5, HexBytes(b"\x01" * 32))
    # the RPC's pending view lags (still 5) but our tx at 5 is known: use 6
    assert nm.next_nonce(5, lambda h: True) == 6
    # our tx at 5 vanished (dropped or reorganised away): resync to the chain's 5
    assert nm.next_nonce(5, lambda h: False) == 5
    # the chain moved ahead of us (another process used the key): follow it
    assert nm.next_nonce(9, lambda h: True) == 9
