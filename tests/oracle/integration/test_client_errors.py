"""MarketClient and TransactionSender against a real anvil: decoded custom errors (pre-flight
and mined), nonce resync, transient RPC failures, fee cap, fee-bump replacement, legacy fees,
and slashing with a quorum-signed fault report."""

from __future__ import annotations

from dataclasses import replace

import threading
import time

import pytest
import requests
from eth_account import Account
from web3 import HTTPProvider, Web3

from oracle.attestation.eip712 import FaultReport, UsageReport, fault_report_digest, usage_report_digest
from oracle.attestation.signing import sign_digest
from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.client import MarketClient, pack_signatures
from oracle.chain.contract import BoundContract, deploy
from oracle.chain.errors import FeeCapExceededError, RpcUnavailableError, TransactionRevertedError
from oracle.chain.tx import GWEI, TransactionSender, TxPolicy

from .conftest import FAST_POLICY, SUBMITTER, open_active_rental
from .fixture_contract import fixture_artifact

pytestmark = pytest.mark.integration


class ScriptedProvider(HTTPProvider):
    """HTTP provider whose answers can be sabotaged per method, for a number of calls."""

    def __init__(self, url: str):
        super().__init__(url, exception_retry_configuration=None)
        self.fail: dict[str, int] = {}  # method -> calls left to fail with a connection error
        self.http_503: dict[str, int] = {}  # method -> calls left to fail with HTTP 503
        self.stale_nonce: int = 0  # eth_getTransactionCount answers this many lower, once
        self.calls: dict[str, int] = {}

    def make_request(self, method, params):
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.fail.get(method, 0) > 0 or self.fail.get("*", 0) > 0:
            key = method if self.fail.get(method, 0) > 0 else "*"
            self.fail[key] -= 1
            raise requests.ConnectionError(f"simulated outage on {method}")
        if self.http_503.get(method, 0) > 0:
            self.http_503[method] -= 1
            response = requests.Response()
            response.status_code = 503
            raise requests.HTTPError("503 Service Unavailable", response=response)
        result = super().make_request(method, params)
        if method == "eth_getTransactionCount" and self.stale_nonce and "result" in result:
            lag, self.stale_nonce = self.stale_nonce, 0
            result = dict(result, result=hex(int(result["result"], 16) - lag))
        return result


def scripted_client(deployed, key_index: int = SUBMITTER, policy: TxPolicy = FAST_POLICY):
    provider = ScriptedProvider(deployed.chain.url)
    sender = TransactionSender(Web3(provider), Account.from_key(ANVIL_KEYS[key_index]), policy=policy,
                               sleep=lambda s: time.sleep(min(s, 0.01)))
    return MarketClient(sender, deployed.market), provider


@pytest.fixture(scope="module")
def rental(deployed):
    return open_active_rental(deployed)


def _report(rental_id: int, sequence: int, available: int, version: int = 1) -> UsageReport:
    return UsageReport(rental_id, sequence, int(time.time()), available, 0, 0, 0, 10_000, 0, 0, 0, b"\x11" * 32,
                       version)


def _signed(deployed, client: MarketClient, report: UsageReport, n: int = 2) -> bytes:
    digest = usage_report_digest(report, client.chain_id, client.address)
    return pack_signatures(digest, [sign_digest(k, digest) for k in deployed.node_keys[:n]])


# -- decoded errors ------------------------------------------------------------------------------

def test_preflight_revert_decodes_custom_error_with_args(deployed, rental):
    client = deployed.client(SUBMITTER)
    # 60 GPU-seconds need 60 s of rental time before the report's periodEnd (report bounds).
    deployed.chain.increase_time(120)
    deployed.chain.rpc("evm_mine", [])
    report = replace(_report(rental.rental_id, 1, 60), period_end=client.latest_block_timestamp())
    client.settle(report, _signed(deployed, client, report))
    nonce = client.w3.eth.get_transaction_count(client.account)
    with pytest.raises(TransactionRevertedError) as info:
        client.settle(report, _signed(deployed, client, report))  # same sequence again
    err = info.value
    assert err.error_name == "UsageSettlement_StaleSequence"
    assert err.error_args == {"rentalId": rental.rental_id, "sequence": 1, "lastSequence": 1}
    assert err.tx_hash is None  # caught at estimation: nothing was sent, no gas spent
    assert client.w3.eth.get_transaction_count(client.account) == nonce


def test_mined_revert_is_decoded_from_the_receipt(deployed, rental):
    client = deployed.client(SUBMITTER)
    report = _report(rental.rental_id, 5, 120, version=7)  # wrong signer-set version
    with pytest.raises(TransactionRevertedError) as info:
        client.market.transact("settle", client_tuple(report), _signed(deployed, client, report), gas=300_000)
    err = info.value
    assert err.error_name == "OracleQuorum_WrongSignerSetVersion"
    assert err.error_args == {"reportVersion": 7, "current": 1}
    assert err.tx_hash is not None and err.receipt["status"] == 0
    assert client.sender.stats["reverted"] == 1


def client_tuple(report):
    from oracle.chain.client import usage_report_tuple

    return usage_report_tuple(report)


def test_quorum_errors_name_the_offending_signature(deployed, rental):
    client = deployed.client(SUBMITTER)
    report = _report(rental.rental_id, 9, 200)
    digest = usage_report_digest(report, client.chain_id, client.address)
    outsider = sign_digest(bytes.fromhex("99" * 32), digest)
    packed = pack_signatures(digest, [sign_digest(deployed.node_keys[0], digest), outsider])
    with pytest.raises(TransactionRevertedError) as info:
        client.settle(report, packed)
    assert info.value.error_name == "OracleQuorum_UnknownSigner"
    assert info.value.error_args["signer"] == Account.from_key(bytes.fromhex("99" * 32)).address


def test_require_string_and_panic_are_decoded(deployed):
    art = fixture_artifact()
    sender = TransactionSender(Web3(HTTPProvider(deployed.chain.url)), Account.from_key(ANVIL_KEYS[SUBMITTER]),
                               policy=FAST_POLICY)
    address, _ = deploy(sender, art.abi, art.bytecode)
    fixture = BoundContract(sender, address, art.abi)
    with pytest.raises(TransactionRevertedError) as info:
        fixture.transact("requireFalse")
    assert (info.value.error_name, info.value.error_args) == ("Error", {"message": "fixture says no"})
    with pytest.raises(TransactionRevertedError) as info:
        fixture.call("underflow")
    assert info.value.error_name == "Panic" and info.value.error_args["code"] == 0x11
    with pytest.raises(TransactionRevertedError) as info:
        fixture.transact("store", 101)
    assert (info.value.error_name, info.value.error_args) == ("Fixture_TooBig", {"value": 101, "max": 100})


# -- nonces and RPC failures ---------------------------------------------------------------------

def test_nonce_too_low_resyncs_and_sends_once(deployed, rental):
    client, provider = scripted_client(deployed)
    client.settle  # noqa: B018 - warm the ABI
    before = client.w3.eth.get_transaction_count(client.account)
    provider.stale_nonce = 1  # a lagging RPC: the pending count is one behind
    token = client.token(deployed.token)
    result = token.transact("approve", deployed.market, 1)
    assert result.receipt["status"] == 1
    assert client.sender.stats["nonce_resyncs"] == 1
    assert client.w3.eth.get_transaction_count(client.account) == before + 1


def test_transient_rpc_failures_are_retried(deployed):
    client, provider = scripted_client(deployed)
    before = client.w3.eth.get_transaction_count(client.account)
    provider.fail = {"eth_sendRawTransaction": 2, "eth_getTransactionReceipt": 3}
    provider.http_503 = {"eth_estimateGas": 2}
    result = client.token(deployed.token).transact("approve", deployed.market, 2)
    assert result.receipt["status"] == 1
    assert client.sender.stats["rpc_retries"] >= 7
    assert client.w3.eth.get_transaction_count(client.account) == before + 1  # sent exactly once


def test_persistent_outage_raises_rpc_unavailable(deployed):
    client, provider = scripted_client(deployed, policy=TxPolicy(rpc_retries=3, backoff_base_s=0.001))
    provider.fail = {"*": 100}
    with pytest.raises(RpcUnavailableError):
        client.signer_set()


# -- fees ----------------------------------------------------------------------------------------

def test_fee_cap_refuses_to_send(deployed):
    client, _ = scripted_client(deployed, policy=TxPolicy(max_fee_per_gas_cap_wei=1))
    before = client.w3.eth.get_transaction_count(client.account)
    with pytest.raises(FeeCapExceededError):
        client.token(deployed.token).transact("approve", deployed.market, 3)
    assert client.w3.eth.get_transaction_count(client.account) == before


def test_eip1559_fees_stay_under_the_cap(deployed):
    cap = 5 * GWEI
    client, _ = scripted_client(deployed, policy=TxPolicy(max_fee_per_gas_cap_wei=cap, receipt_poll_s=0.02))
    result = client.token(deployed.token).transact("approve", deployed.market, 4)
    tx = client.w3.eth.get_transaction(result.tx_hash)
    assert tx["type"] == 2 and tx["maxFeePerGas"] <= cap


def test_legacy_fee_fallback(deployed):
    client, _ = scripted_client(deployed, policy=TxPolicy(legacy=True, receipt_poll_s=0.02))
    result = client.token(deployed.token).transact("approve", deployed.market, 5)
    assert client.w3.eth.get_transaction(result.tx_hash)["type"] == 0


def test_stuck_transaction_is_replaced_with_bumped_fees(deployed):
    chain = deployed.chain
    policy = TxPolicy(receipt_timeout_s=0.6, receipt_poll_s=0.05, rebroadcast_after_s=30, max_fee_bumps=3)
    client, _ = scripted_client(deployed, policy=policy)
    chain.set_automine(False)
    try:
        miner = threading.Timer(1.5, lambda: chain.mine(1))
        miner.start()
        result = client.token(deployed.token).transact("approve", deployed.market, 6)
        miner.join()
    finally:
        chain.set_automine(True)
    assert client.sender.stats["fee_bumps"] >= 1
    assert len(result.replaced) >= 1 and result.tx_hash not in result.replaced  # a replacement was mined
    mined = client.w3.eth.get_transaction(result.tx_hash)
    assert mined["maxPriorityFeePerGas"] > 1 * GWEI  # the tip was bumped above the node's suggestion
    assert client.w3.eth.get_transaction_count(client.account) == mined["nonce"] + 1


# -- slashing ------------------------------------------------------------------------------------

def test_slash_with_quorum_signed_fault_report(deployed, rental):
    client = deployed.client(SUBMITTER)
    fault = FaultReport(rental.rental_id, 0, 1, int(time.time()), b"\x22" * 32, 1)
    digest = fault_report_digest(fault, client.chain_id, client.address)
    signatures = [sign_digest(k, digest) for k in deployed.node_keys[1:]]  # nodes 2 and 3
    stake_before = int(client.stake_of(rental.provider.account)["active"])
    result = client.slash(fault, signatures)  # a list: packed in ascending signer order
    slashed = result.events["Slashed"][0]
    assert (slashed["rentalId"], slashed["faultId"], slashed["kind"]) == (rental.rental_id, 0, 1)
    assert client.is_fault_settled(rental.rental_id, 0)
    assert int(client.stake_of(rental.provider.account)["active"]) < stake_before
    with pytest.raises(TransactionRevertedError) as info:
        client.slash(fault, signatures)
    assert info.value.error_name == "ProviderStaking_FaultAlreadySettled"


def test_client_from_encrypted_keystore_signs_locally(deployed, tmp_path):
    from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore

    key = ANVIL_KEYS[SUBMITTER]
    path = tmp_path / "submitter.json"
    password = "correct horse battery staple 42"
    new_keystore(path, password, private_key=bytes.fromhex(key[2:]), **CHEAPEST_ACCEPTED_KDF)
    client = MarketClient.from_keystore(deployed.chain.url, path, password, deployed.market, policy=FAST_POLICY)
    assert client.account == Account.from_key(key).address
    result = client.token(deployed.token).transact("approve", deployed.market, 7)
    assert client.w3.eth.get_transaction(result.tx_hash)["from"] == client.account


def test_legacy_fees_are_chosen_on_a_chain_without_base_fee():
    from oracle.chain.anvil import Anvil
    from oracle.chain.contract import make_sender

    with Anvil(extra_args=["--hardfork", "berlin"]) as pre_london:
        sender = make_sender(pre_london.url, ANVIL_KEYS[0], TxPolicy(receipt_poll_s=0.02))
        assert "baseFeePerGas" not in sender.w3.eth.get_block("latest")
        result = sender.send({"to": Account.from_key(ANVIL_KEYS[1]).address, "value": 1, "gas": 21_000})
        assert sender.w3.eth.get_transaction(result.tx_hash)["type"] == 0
