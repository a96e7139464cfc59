"""End to end on anvil: three real uvicorn nodes (threshold two) meter the replayed H100 trace,
one node is stopped mid-rental, and the other two still settle; the payment lands where the
contract's arithmetic says (provider credit, protocol fee to the treasury, refund to the renter).

Flow: deploy (libraries linked) -> provider stakes and lists an offer with the agent's address ->
renter opens a rental -> three nodes start knowing nothing of it -> provider starts it -> an
``EventFollower`` sees ``RentalStarted`` and feeds each node's rental registry -> the replay
agent sends signed batches to all three nodes -> node 3 is stopped -> node 1's aggregator
collects a 2-of-3 quorum and calls ``settle`` -> the agent finishes -> final ``settleBatch`` ->
renter ends, provider finalizes, both withdraw.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account

from oracle.agent.agent import Agent
from oracle.agent.spool import Spool
from oracle.chain.anvil import ANVIL_KEYS, Anvil
from oracle.chain.client import OfferTerms
from oracle.chain.events import CursorStore, EventFollower, RentalRegistryFeed
from oracle.node.aggregator import Aggregator
from oracle.node.rentals import SqliteRentalRegistry
from oracle.node.storage import NodeStorage
from oracle.node.testing import TRACE_A, NodeProcess
from oracle.telemetry.sources.replay import ReplaySource, backdate_ms

from .conftest import GOVERNANCE, PROVIDER, RENTER, deploy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENT_KEY = bytes.fromhex("a7" * 32)
SPEED = 10.0  # the 85 s trace in about 8.5 s of wall time
PRICE_PER_GPU_HOUR = 3_600_000  # 3.6 tUSD (6 decimals): 1000 units per GPU-second
PRICE_PER_KWH = 500_000  # 0.5 tUSD per kWh
BUDGET = 100_000_000  # 100 tUSD
STAKE = 2_000_000_000  # 2000 tUSD (min stake per GPU is 1000 tUSD)
FEE_BPS = 100


@pytest.fixture(scope="module")
def chain():
    # The chain's clock starts 15 min in the past so the rental can start when the (back-dated)
    # replay's first sample is stamped.
    with Anvil(extra_args=["--timestamp", str(int(time.time()) - 900)]) as anvil:
        yield anvil


def _cost(available: int, energy: int) -> int:
    return available * PRICE_PER_GPU_HOUR // 3600 + energy * PRICE_PER_KWH // 3_600_000_000


def test_three_nodes_one_stopped_two_still_settle(chain, tmp_path: Path):
    t0 = time.monotonic()
    deployed = deploy(chain)
    gov, provider, renter = deployed.client(GOVERNANCE), deployed.client(PROVIDER), deployed.client(RENTER)
    token = deployed.token
    agent_address = Account.from_key(AGENT_KEY).address

    # -- provider and renter --------------------------------------------------------------------
    provider.stake(token, STAKE)
    offer_id, _ = provider.create_offer(OfferTerms(
        gpu_model="NVIDIA H100 80GB HBM3", gpu_count=1, memory_mib=81_559, payment_token=token,
        price_per_gpu_hour=PRICE_PER_GPU_HOUR, price_per_kwh=PRICE_PER_KWH, region="eu-north-1",
        grid_intensity_g_per_kwh=40, max_duration_seconds=86_400, min_uptime_bps=9_000, agent=agent_address,
    ))
    renter_balance_before = renter.balance_of(token)
    provider_balance_before = provider.balance_of(token)
    rental_id, _ = renter.open_rental(offer_id, gpu_count=1, budget=BUDGET)

    # -- three nodes that know nothing of the rental yet ---------------------------------------
    nodes, dbs = [], []
    for i, key in enumerate(deployed.node_keys):
        db = tmp_path / f"node-{i + 1}.sqlite3"
        dbs.append(db)
        nodes.append(NodeProcess({
            "GPURENT_NODE_DEV_MODE": "true",
            "GPURENT_NODE_PRIVATE_KEY": "0x" + key.hex(),
            "GPURENT_NODE_CHAIN_ID": str(chain.chain_id),
            "GPURENT_NODE_MARKET_ADDRESS": deployed.market,
            "GPURENT_NODE_SIGNER_SET_VERSION": "1",
            "GPURENT_NODE_DB_PATH": str(db),
            "GPURENT_NODE_LOG_LEVEL": "warning",
        }, log_path=tmp_path / f"node-{i + 1}.log"))
    stop_agent = threading.Event()
    agent_thread = None
    try:
        for node in nodes:
            node.start()
        urls = [n.url for n in nodes]

        # -- the chain tells the nodes about the rental ----------------------------------------
        storages = [NodeStorage(db) for db in dbs]
        feed = RentalRegistryFeed(gov, [SqliteRentalRegistry(s) for s in storages])
        follower = EventFollower(
            gov.w3, deployed.market, gov.abi, feed, store=CursorStore(tmp_path / "follower.sqlite3"),
            confirmations=0, event_names=["RentalOpened", "RentalStarted", "RentalEnded"],
            start_block=deployed.deployment.block_number,
        )
        follower.poll_once()
        assert feed.started == {}  # opened, not started

        source = ReplaySource(TRACE_A, speed=SPEED, period_ms=1000)
        back_s = backdate_ms(source.duration_ms, SPEED) / 1000
        planned_start = int(time.time() - back_s) + 2
        chain.set_next_timestamp(planned_start)
        started = provider.start_rental(rental_id)
        started_at = int(started.events["RentalStarted"][0]["startedAt"])
        assert started_at == planned_start
        follower.poll_once()
        assert feed.started == {rental_id: started_at}
        for s in storages:
            assert s.get_rental(rental_id)[1] == agent_address

        # -- the replay agent -----------------------------------------------------------------
        source.not_before_ms = started_at * 1000
        agent = Agent(source=source, spool=Spool(tmp_path / "agent-spool.sqlite3"), private_key=AGENT_KEY,
                      rental_id=rental_id, nodes=urls, sample_hz=4.0, batch_samples=10,
                      stop=stop_agent, drain_timeout_s=3.0, request_timeout_s=2.0)
        agent_thread = threading.Thread(target=agent.run, daemon=True)
        agent_thread.start()

        # -- node 3 stops mid-rental ----------------------------------------------------------
        time.sleep(0.4 * source.duration_ms / 1000 / SPEED)
        nodes[2].stop()
        stopped_at = time.monotonic()

        aggregator = Aggregator(deployed.node_client(0), urls, timeout_s=3.0)
        mid = aggregator.settle_rental(rental_id)
        assert mid.status == "settled", mid.detail
        node3 = Account.from_key(deployed.node_keys[2]).address
        assert node3 not in mid.signers and len(mid.signers) == 2
        assert "unreachable" in mid.notes[urls[2]]
        mid_rental = gov.get_rental(rental_id)
        assert mid_rental["sequence"] == mid.sequence

        agent_thread.join(timeout=60)
        assert not agent_thread.is_alive(), "the replay agent did not finish"

        # -- final settlement, batched --------------------------------------------------------
        final_outcomes = aggregator.settle_batch([rental_id])
        assert [o.status for o in final_outcomes] == ["settled"], final_outcomes
        final = final_outcomes[0]
        assert final.sequence > mid.sequence
        assert node3 not in final.signers

        # the two live nodes hold every batch; the settled report is theirs
        quorum = aggregator.collect_usage(rental_id, sequence=final.sequence)
        report = quorum.report
        rental = gov.get_rental(rental_id)
        assert rental["sequence"] == report.sequence
        assert rental["availableGpuSeconds"] == report.available_gpu_seconds

        # -- payment lands where the contract says -------------------------------------------
        expected_paid = min(BUDGET, _cost(report.available_gpu_seconds, report.energy_millijoules))
        assert gov.cost_of(rental_id, report.available_gpu_seconds, report.energy_millijoules) == expected_paid
        assert rental["paid"] == expected_paid
        assert mid.payment + final.payment == expected_paid
        fee = expected_paid * FEE_BPS // 10_000
        provider_address = provider.account
        assert provider.withdrawable(provider_address, token) == expected_paid - fee

        head = gov.w3.eth.get_block("latest")["timestamp"]
        chain.set_next_timestamp(max(head + 1, report.period_end))
        renter.end_rental(rental_id)
        finalized = provider.finalize_rental(rental_id).events["RentalFinalized"][0]
        assert (finalized["paid"], finalized["fee"], finalized["refund"]) == (expected_paid, fee, BUDGET - expected_paid)
        provider.withdraw(token)
        renter.withdraw(token)
        assert provider.balance_of(token) - provider_balance_before == expected_paid - fee
        assert renter_balance_before - renter.balance_of(token) == expected_paid
        assert gov.withdrawable(gov.params()["treasury"], token) == fee

        summary = {
            "rental_id": rental_id,
            "available_gpu_seconds": report.available_gpu_seconds,
            "energy_millijoules": report.energy_millijoules,
            "busy_gpu_seconds": report.busy_gpu_seconds,
            "sequence_mid": mid.sequence, "sequence_final": final.sequence,
            "payment_mid": mid.payment, "payment_final": final.payment,
            "paid": expected_paid, "fee": fee, "provider_credit": expected_paid - fee,
            "refund": BUDGET - expected_paid,
            "gas_settle": mid.gas_used, "gas_settle_batch_1": final.gas_used,
            "node3_stopped_after_s": round(stopped_at - t0, 1),
            "wall_s": round(time.monotonic() - t0, 1),
        }
        print("\nSETTLEMENT " + json.dumps(summary))
        (tmp_path / "summary.json").write_text(json.dumps(summary))
    finally:
        stop_agent.set()
        if agent_thread is not None:
            agent_thread.join(timeout=10)
        for node in nodes:
            node.stop()
