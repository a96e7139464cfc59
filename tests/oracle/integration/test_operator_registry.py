"""The OperatorRegistry on a real anvil: a signer's two conflicting signatures, submitted by a
stranger, slash the signer's bond; fees reach the operators through `gpurent oracle` commands.

The market is deployed by ``oracle.actions.deploy.deploy_market`` (which now deploys the registry
beside it); signatures are made by the node's own signing code (``oracle.attestation``) over the
Python EIP-712 digest, which must equal the market's ``usageReportDigest``.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest
from click.testing import CliRunner
from eth_account import Account

from oracle.attestation.eip712 import UsageReport, usage_batch_digest, usage_report_digest
from oracle.attestation.signing import sign_digest
from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.contract import connect
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.operators import OperatorClient, signed_report_tuple
from oracle.chain.tx import TransactionSender
from oracle.deployment import save_deployment
from tests.oracle.integration.conftest import FAST_POLICY, GOVERNANCE, NODE_KEYS, open_active_rental
from tests.oracle.integration.test_aggregator import advance_chain

pytestmark = [pytest.mark.integration]

STRANGER = 5
CLI_OPERATOR = 6
BATCH_OPERATOR = 7
MIN_BOND = 1_000 * 10**6


def _operator(deployed, key: bytes) -> OperatorClient:
    sender = TransactionSender(connect(deployed.chain.url), Account.from_key(key), policy=FAST_POLICY)
    return OperatorClient(sender, deployed.deployment.operator_registry)


def _mint(deployed, to: str, amount: int) -> None:
    from oracle.chain.artifacts import get_artifact
    from oracle.chain.contract import BoundContract

    governance = deployed.client(GOVERNANCE)
    BoundContract(governance.sender, deployed.token, get_artifact("TestStablecoin").abi).transact("mint", to, amount)


def _report(**values) -> UsageReport:
    """A UsageReport with every field not given at 0 (whatever fields the type has)."""
    base = {f.name: 0 for f in fields(UsageReport)}
    base.update(telemetry_hash=b"\x11" * 32, signer_set_version=1)
    base.update(values)
    return UsageReport(**base)


def test_a_strangers_proof_of_two_conflicting_signatures_slashes_the_signers_bond(deployed):
    node_key = NODE_KEYS[0]
    node = _operator(deployed, node_key)
    _mint(deployed, node.account, MIN_BOND)
    node.bond(deployed.token, MIN_BOND)
    assert node.is_bonded()

    # The node signs two different reports for rental 1, sequence 4 (what an honest node never does).
    chain_id = deployed.chain.chain_id
    a = _report(rental_id=1, sequence=4, period_end=1_800_000_000, available_gpu_seconds=600,
                energy_millijoules=1_000_000)
    b = replace(a, energy_millijoules=9_000_000)
    digest_a = usage_report_digest(a, chain_id, deployed.market)
    digest_b = usage_report_digest(b, chain_id, deployed.market)
    assert deployed.client(GOVERNANCE).usage_report_digest(a) == digest_a  # the market's own digest
    sig_a, sig_b = sign_digest(node_key, digest_a), sign_digest(node_key, digest_b)

    stranger = _operator(deployed, ANVIL_KEYS[STRANGER])
    result = stranger.prove_equivocation(a, sig_a, b, sig_b)
    event = result.events["EquivocationProven"][0]
    params = stranger.params()
    slashed = MIN_BOND * params["slashBps"] // 10_000
    reward = slashed * params["proverRewardBps"] // 10_000
    assert event["operator"] == node.account and event["prover"] == stranger.account
    assert int(event["slashed"]) == slashed and int(event["proverReward"]) == reward
    assert int(node.bond_of()["active"]) == MIN_BOND - slashed
    assert not node.is_bonded()  # below the minimum: governance can no longer install it
    assert node.equivocation_proven(node.account, 1, 4)

    # The same proof again (either order) is refused: each (operator, rental, sequence) once.
    for pair in ((a, sig_a, b, sig_b), (b, sig_b, a, sig_a)):
        with pytest.raises(TransactionRevertedError) as refused:
            stranger.prove_equivocation(*pair)
        assert refused.value.error_name == "OperatorRegistry_AlreadyProven"

    # The stranger withdraws its reward.
    before = deployed.client(STRANGER).balance_of(deployed.token)
    stranger.withdraw(deployed.token)
    assert deployed.client(STRANGER).balance_of(deployed.token) - before == reward


def test_a_strangers_proof_from_a_batch_signature_slashes_the_signers_bond(deployed):
    """Issue 9: what a node signs for settleBatch (the EIP-712 digest of a UsageReportBatch) is
    evidence too: a report inside a signed batch that conflicts with one the same key signed
    alone (or in another batch) slashes its bond; a stranger submits the pair and is rewarded."""
    operator_key = bytes.fromhex(ANVIL_KEYS[BATCH_OPERATOR].removeprefix("0x"))
    node = _operator(deployed, operator_key)
    _mint(deployed, node.account, MIN_BOND)
    node.bond(deployed.token, MIN_BOND)
    chain_id = deployed.chain.chain_id
    a = _report(rental_id=3, sequence=2, period_end=1_800_000_000, available_gpu_seconds=120,
                energy_millijoules=5_000_000)
    b = replace(a, available_gpu_seconds=240)
    # The batch the node signed for settleBatch: three rentals' reports, `a` in the middle.
    batch = [_report(rental_id=9, sequence=1, available_gpu_seconds=60), a,
             _report(rental_id=11, sequence=7, available_gpu_seconds=30)]
    batch_digest = usage_batch_digest(batch, chain_id, deployed.market)
    assert deployed.client(GOVERNANCE).usage_batch_digest(batch) == batch_digest  # the market's own digest
    sig_batch = sign_digest(operator_key, batch_digest)
    # ... and `b` inside another batch, alone.
    other_batch = [b, _report(rental_id=12, sequence=1, available_gpu_seconds=10)]
    sig_other = sign_digest(operator_key, usage_batch_digest(other_batch, chain_id, deployed.market))

    stranger = _operator(deployed, ANVIL_KEYS[STRANGER])
    with pytest.raises(TransactionRevertedError) as refused:  # a batch that does not hold the report
        stranger.prove_equivocation_signed(signed_report_tuple(a, sig_batch, batch)[:2] + (0, sig_batch),
                                           signed_report_tuple(b, sig_other, other_batch))
    assert refused.value.error_name == "OperatorRegistry_NotInBatch"
    before = stranger.balance_of(deployed.token)
    result = stranger.prove_equivocation_signed(signed_report_tuple(a, sig_batch, batch),
                                                signed_report_tuple(b, sig_other, other_batch))
    event = result.events["EquivocationProven"][0]
    params = stranger.params()
    slashed = MIN_BOND * params["slashBps"] // 10_000
    reward = slashed * params["proverRewardBps"] // 10_000
    assert event["operator"] == node.account and event["prover"] == stranger.account
    assert int(event["slashed"]) == slashed and int(event["proverReward"]) == reward
    assert int(node.bond_of()["active"]) == MIN_BOND - slashed
    assert stranger.balance_of(deployed.token) - before == reward
    assert node.equivocation_proven(node.account, 3, 2)
    # The single-signature form of the same conflict is now refused: once per (operator, rental, sequence).
    sig_b = sign_digest(operator_key, usage_report_digest(b, chain_id, deployed.market))
    with pytest.raises(TransactionRevertedError) as refused:
        stranger.prove_equivocation_signed(signed_report_tuple(b, sig_b), signed_report_tuple(a, sig_batch, batch))
    assert refused.value.error_name == "OperatorRegistry_AlreadyProven"


def test_a_report_resigned_for_a_new_signer_set_version_is_not_equivocation(deployed):
    node_key = NODE_KEYS[1]
    node = _operator(deployed, node_key)
    _mint(deployed, node.account, MIN_BOND)
    node.bond(deployed.token, MIN_BOND)
    a = _report(rental_id=2, sequence=1, available_gpu_seconds=60)
    resigned = replace(a, signer_set_version=2)
    chain_id = deployed.chain.chain_id
    sig_a = sign_digest(node_key, usage_report_digest(a, chain_id, deployed.market))
    sig_r = sign_digest(node_key, usage_report_digest(resigned, chain_id, deployed.market))
    with pytest.raises(TransactionRevertedError) as refused:
        _operator(deployed, ANVIL_KEYS[STRANGER]).prove_equivocation(a, sig_a, resigned, sig_r)
    assert refused.value.error_name == "OperatorRegistry_SameReport"
    assert int(node.bond_of()["active"]) == MIN_BOND


def _cli(deployed, deployments, *args: str, dev: int, expect: int = 0):
    from oracle.cli.main import main

    argv = ["oracle", *args, "--rpc", deployed.chain.url, "--deployments", str(deployments), "--json",
            "--dev-account", str(dev)]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return json.loads(result.output) if expect == 0 else result.output


def test_oracle_bond_earnings_withdraw_and_unbond_commands(deployed, tmp_path):
    deployments = tmp_path / "deployments.json"
    save_deployment(deployed.deployment, deployments)
    governance = deployed.client(GOVERNANCE)
    cli_address = Account.from_key(ANVIL_KEYS[CLI_OPERATOR]).address
    _mint(deployed, cli_address, MIN_BOND)

    bonded = _cli(deployed, deployments, "bond", str(MIN_BOND // 10**6), dev=CLI_OPERATOR)
    assert bonded["eligible"] is True and bonded["active"] == MIN_BOND

    # Governance puts the CLI operator in the signer set with node 2 (both bonded), and routes
    # the fee to the registry's ledger (the market's fee credit; see the Foundry OperatorFixture).
    node2 = _operator(deployed, NODE_KEYS[2])
    _mint(deployed, node2.account, MIN_BOND)
    node2.bond(deployed.token, MIN_BOND)
    governance.set_signer_set([cli_address, node2.account], 2)
    params = dict(governance.params())
    params["treasury"] = deployed.deployment.operator_registry
    governance.set_params(params)

    # 600 GPU-seconds at 60,000 tUSD per GPU-hour: a fee above the rebate reserve's target.
    rental = open_active_rental(deployed, budget=20_000 * 10**6, price_per_gpu_hour=60_000 * 10**6)
    deployed.chain.increase_time(600)
    deployed.chain.mine()
    period_end = int(governance.w3.eth.get_block("latest")["timestamp"])
    report = _report(rental_id=rental.rental_id, sequence=1, period_end=period_end, available_gpu_seconds=600,
                     signer_set_version=governance.signer_set().version)
    digest = governance.usage_report_digest(report)
    signatures = [sign_digest(bytes.fromhex(ANVIL_KEYS[CLI_OPERATOR].removeprefix("0x")), digest),
                  sign_digest(NODE_KEYS[2], digest)]
    counted = node2.settle_for(report, signatures, digest)
    assert counted.events["RebateAccrued"][0]["reports"] == 1
    rental.renter.end_rental(rental.rental_id)
    deployed.chain.increase_time(rental.provider.rental_terms(rental.rental_id)["settlementGrace"] + 1)
    deployed.chain.mine(1)  # finalization waits the rental's settlement grace
    rental.provider.finalize_rental(rental.rental_id)
    fee = governance.withdrawable(deployed.deployment.operator_registry, deployed.token)
    assert fee > 0

    earnings = _cli(deployed, deployments, "earnings", dev=CLI_OPERATOR)
    assert earnings["pending_fees"] == fee and earnings["bonded"] is True and earnings["withdrawable"] == 0

    before = governance.balance_of(deployed.token, cli_address)
    withdrawn = _cli(deployed, deployments, "withdraw", dev=CLI_OPERATOR)
    reserve = node2.rebate_reserve(deployed.token)
    share = (fee - reserve) // 2
    assert withdrawn["amount"] == share > 0
    assert governance.balance_of(deployed.token, cli_address) - before == share

    refused = _cli(deployed, deployments, "unbond", dev=CLI_OPERATOR, expect=1)
    assert "OperatorRegistry_InSignerSet" in refused

class _Peer:
    """A scripted peer node (httpx.MockTransport): signs deterministic reports of (rental, sequence)."""

    def __init__(self, key: bytes, chain_id: int, market: str, version: int, base_time: int, holds: int = 3):
        self.key, self.chain_id, self.market, self.version = key, chain_id, market, version
        self.base_time, self.holds = base_time, holds
        self.start_of = None  # rental id -> startedAt; reports then end after the rental's start
        self.address = Account.from_key(key).address

    def report(self, rental_id: int, sequence: int) -> UsageReport:
        base = self.start_of(rental_id) if self.start_of is not None else self.base_time
        return _report(rental_id=rental_id, sequence=sequence, period_end=base + 10 * sequence,
                       available_gpu_seconds=10 * sequence, signer_set_version=self.version)

    def handle(self, request):
        import httpx

        from oracle.attestation.eip712 import usage_batch_digest
        from oracle.node.attestor import report_fields

        parts = request.url.path.strip("/").split("/")
        if request.method == "GET" and parts[-1] == "report":
            rental_id, sequence = int(parts[2]), int(request.url.params.get("sequence", self.holds))
            report = self.report(rental_id, sequence)
            digest = usage_report_digest(report, self.chain_id, self.market)
            return httpx.Response(200, json={"rental_id": rental_id, "sequence": sequence,
                                             "report": report_fields(report), "digest": "0x" + digest.hex(),
                                             "signature": "0x" + sign_digest(self.key, digest).hex(),
                                             "signer": self.address})
        if request.method == "POST" and parts[-1] == "batch-signatures":
            reports = [self.report(r["rental_id"], r["sequence"]) for r in json.loads(request.content)["reports"]]
            digest = usage_batch_digest(reports, self.chain_id, self.market)
            return httpx.Response(200, json={"digest": "0x" + digest.hex(), "signer": self.address,
                                             "signature": "0x" + sign_digest(self.key, digest).hex(),
                                             "reports": [report_fields(r) for r in reports]})
        return httpx.Response(404, json={"detail": "no such route"})


def test_a_node_settling_through_the_registry_accrues_rebates_and_reads_market_events(deployed):
    import httpx

    from oracle.node.aggregator import Aggregator
    from oracle.node.submit import registry_submitter

    governance = deployed.client(GOVERNANCE)
    submitter_key, peer_key = NODE_KEYS[1], NODE_KEYS[2]
    for key in (submitter_key, peer_key):
        op = _operator(deployed, key)
        if not op.is_bonded():
            _mint(deployed, op.account, MIN_BOND)
            op.bond(deployed.token, MIN_BOND)
    governance.set_signer_set([Account.from_key(k).address for k in (submitter_key, peer_key)], 2)
    version = governance.signer_set().version
    now = int(governance.w3.eth.get_block("latest")["timestamp"]) - 3600
    peers = {name: _Peer(key, deployed.chain.chain_id, deployed.market, version, now)
             for name, key in (("n1", submitter_key), ("n2", peer_key))}
    http = httpx.Client(transport=httpx.MockTransport(lambda request: peers[request.url.host].handle(request)))
    node = deployed.node_client(1)
    submitter = registry_submitter(node, deployed.deployment.operator_registry)
    aggregator = Aggregator(node, ["http://n1", "http://n2"], http=http)
    aggregator.submitter = submitter  # what ChainServices does with operator_registry_address
    before = int(submitter.operator.bond_of()["rebateReports"])

    # Reports end 10 s per sequence after the rental's start; the chain is moved past them (an
    # Active rental's report settles only once its periodEnd is not after the block time).
    for peer in peers.values():
        peer.start_of = lambda rental_id: int(node.get_rental(rental_id)["startedAt"])
    single = open_active_rental(deployed)
    advance_chain(deployed)
    outcome = aggregator.settle_rental(single.rental_id)
    assert outcome.status == "settled", outcome.detail
    assert outcome.payment == 30 * 3_600_000 // 3600  # read from the market's UsageSettled event

    first, second = open_active_rental(deployed), open_active_rental(deployed)
    advance_chain(deployed)
    outcomes = aggregator.settle_batch([first.rental_id, second.rental_id])
    assert [o.status for o in outcomes] == ["settled", "settled"], [o.detail for o in outcomes]
    assert all(o.payment == 30 * 1000 for o in outcomes)  # from UsageBatchSettled
    assert int(submitter.operator.bond_of()["rebateReports"]) == before + 3
    assert submitter.use_registry  # never fell back to the market

    # A stale report through the registry keeps the market's error name (the aggregator's "already settled").
    report = peers["n1"].report(single.rental_id, 3)
    digest = governance.usage_report_digest(report)
    with pytest.raises(TransactionRevertedError) as stale:
        submitter.settle(report, node._packed(node.usage_report_digest, report,
                                              [sign_digest(k, digest) for k in (submitter_key, peer_key)]))
    assert stale.value.error_name == "UsageSettlement_StaleSequence"


def test_a_linked_registry_gets_the_operators_fee_share_and_gates_the_signer_set(deployed):
    """Runs last in the module: it links the registry to the market."""
    governance = deployed.client(GOVERNANCE)
    registry = deployed.deployment.operator_registry
    governance.transact("setOperatorRegistry", registry, 2_000)
    assert list(governance.view("operatorRegistry")) == [registry, 2_000]
    params = dict(governance.params())
    if params["treasury"] == registry:  # an earlier test routed the whole fee here
        params["treasury"] = governance.account
        governance.set_params(params)

    # An unbonded key cannot join the signer set; a bonded one can.
    outsider = Account.from_key(bytes.fromhex("77" * 32)).address
    bonded = [_operator(deployed, k) for k in NODE_KEYS[1:]]
    for op in bonded:
        if not op.is_bonded():
            _mint(deployed, op.account, MIN_BOND)
            op.bond(deployed.token, MIN_BOND)
    with pytest.raises(TransactionRevertedError) as refused:
        governance.set_signer_set([outsider] + [op.account for op in bonded], 2)
    assert refused.value.error_name == "OracleQuorum_SignerNotBonded"
    governance.set_signer_set([op.account for op in bonded], 2)

    # Finalization credits 20 % of the fee to the registry, the rest to the treasury.
    before = {who: governance.withdrawable(who, deployed.token) for who in (registry, governance.account)}
    rental = open_active_rental(deployed)
    deployed.chain.increase_time(60)
    deployed.chain.mine()
    now = int(governance.w3.eth.get_block("latest")["timestamp"])
    report = _report(rental_id=rental.rental_id, sequence=1, period_end=now, available_gpu_seconds=60,
                     signer_set_version=governance.signer_set().version)
    digest = governance.usage_report_digest(report)
    governance.settle(report, [sign_digest(k, digest) for k in NODE_KEYS[1:]])
    rental.renter.end_rental(rental.rental_id)
    deployed.chain.increase_time(int(governance.params()["settlementGrace"]) + 1)
    deployed.chain.mine()
    finalized = rental.provider.finalize_rental(rental.rental_id)
    fee = int(finalized.events["RentalFinalized"][0]["fee"])
    gained = {who: governance.withdrawable(who, deployed.token) - before[who] for who in before}
    assert fee > 0 and gained[registry] == fee * 2_000 // 10_000
    assert gained[registry] + gained[governance.account] == fee
