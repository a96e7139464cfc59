"""A node started with ``rpc_url`` and no static rentals learns its rentals from chain events and
settles by itself.

Anvil with the market deployed (libraries linked), three real uvicorn node processes (threshold
two) configured only through ``GPURENT_NODE_*`` (``rpc_url``, ``self_url``, ``peers``,
``confirmations = 1``, no ``rentals``) -> provider stakes and lists an offer, renter opens, provider
starts -> the nodes do not meter the rental while ``RentalStarted`` is unconfirmed, and do once a
block lands on top -> the replay agent sends the real H100 trace (time-compressed) -> the nodes'
own settlement loops aggregate 2-of-3 signatures and land ``settle`` transactions sent by node
keys, until the whole trace is paid for (all three try; the submit stagger keeps the later-ranked
ones from sending what the first one settled) -> ``/metrics`` and ``/healthz`` show what happened.

Also: an unreachable RPC endpoint does not stop the API, and a wrong chain is refused at startup.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from oracle.agent.agent import Agent
from oracle.agent.spool import Spool
from oracle.chain.anvil import free_port
from oracle.chain.settlements import from_receipt
from oracle.errors import ConfigError
from oracle.node.testing import TRACE_A, NodeProcess
from oracle.telemetry.sources.replay import ReplaySource

from .conftest import (
    GOVERNANCE,
    anvil_started_in_the_past,
    node_env,
    open_rental,
    start_when_replay_begins,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENT_KEY = bytes.fromhex("a9" * 32)
SPEED = 10.0  # the 85 s trace in about 8.5 s of wall time
PRICE_PER_GPU_HOUR = 3_600_000  # 3.6 tUSD (6 decimals) per GPU-hour
PRICE_PER_KWH = 500_000
BUDGET = 100_000_000
STAKE = 2_000_000_000
SETTLE_INTERVAL_S = 1.0
SUBMIT_STAGGER_S = 2.5  # rank r waits r x 2.5 s before sending: longer than the interval


@pytest.fixture(scope="module")
def chain():
    with anvil_started_in_the_past() as anvil:
        yield anvil


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metrics_of(url: str) -> dict[tuple[str, tuple], float]:
    return parse_metrics(httpx.get(url + "/metrics", timeout=5).text)


def metric_sum(metrics: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and wanted <= set(ls))


class ChainFollowingNodes:
    """Three node processes that know only the chain: no static rentals."""

    def __init__(self, deployed, tmp: Path):
        self.deployed = deployed
        self.tmp = tmp
        ports = [free_port() for _ in deployed.node_keys]
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]
        self.addresses = [Account.from_key(k).address for k in deployed.node_keys]
        self.nodes = []
        for i in range(len(deployed.node_keys)):
            self.nodes.append(NodeProcess(node_env(
                deployed, i, tmp / f"node-{i + 1}.sqlite3",
                log_level="info",
                rpc_url=deployed.chain.url,
                self_url=self.urls[i],
                peers=",".join(u for j, u in enumerate(self.urls) if j != i),
                chain_start_block=deployed.deployment.block_number,
                confirmations=1,
                chain_poll_interval_s="0.2",
                settle_interval_s=SETTLE_INTERVAL_S,
                submit_stagger_s=SUBMIT_STAGGER_S,
                settle_max_interval_s="1",  # every round: this test watches each settlement
            ), port=ports[i], log_path=tmp / f"node-{i + 1}.log"))
        with ThreadPoolExecutor(len(self.nodes)) as pool:  # start the three processes side by side
            list(pool.map(lambda node: node.start(timeout_s=60), self.nodes))

    def health(self, i: int) -> dict:
        return httpx.get(self.urls[i] + "/healthz", timeout=5).json()

    def knows(self, i: int, rental_id: int) -> bool:
        """Whether node i meters the rental: 404 'meters no rental' vs 409 'no batches yet' or 200."""
        status = httpx.get(f"{self.urls[i]}/v1/rentals/{rental_id}/report", timeout=5).status_code
        assert status in (200, 404, 409), status
        return status != 404

    def logs(self) -> str:
        return "\n".join(f"--- node {i + 1}\n{node.output()[-3000:]}" for i, node in enumerate(self.nodes))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="module")
def nodes(deployed, tmp_path_factory):
    net = ChainFollowingNodes(deployed, tmp_path_factory.mktemp("chain-nodes"))
    yield net
    net.stop()


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def node_transactions(w3, first_block: int, senders: list[str]) -> list[tuple[dict, dict]]:
    """(tx, receipt) of every transaction sent by ``senders`` since ``first_block``."""
    out = []
    for number in range(first_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] in senders:
                out.append((tx, w3.eth.get_transaction_receipt(tx["hash"])))
    return out


def test_nodes_learn_a_rental_from_events_and_settle_it_themselves(deployed, nodes):
    t0 = time.monotonic()
    gov = deployed.client(GOVERNANCE)
    w3 = gov.w3
    wait_for(lambda: all(nodes.health(i)["chain"]["state"] == "following" for i in range(3)), 30,
             "the three nodes to follow the chain")

    # -- provider lists an offer with the agent's address; renter opens -----------------------------
    _, rental_id = open_rental(deployed, agent=Account.from_key(AGENT_KEY).address, budget=BUDGET,
                               price_per_gpu_hour=PRICE_PER_GPU_HOUR, price_per_kwh=PRICE_PER_KWH,
                               extra_stake=STAKE)

    # -- provider starts it when the replay's first sample will be stamped ---------------------------
    source = ReplaySource(TRACE_A, speed=SPEED, period_ms=1000)
    started, started_at = start_when_replay_begins(deployed, rental_id, source, SPEED, mine_now=False)

    # -- confirmations = 1: RentalStarted is not acted on until a block lands on top -----------------
    time.sleep(1.0)  # five follower polls
    assert w3.eth.block_number == started.block_number
    assert not any(nodes.knows(i, rental_id) for i in range(3)), "a node acted on an unconfirmed event"
    deployed.chain.mine(1)
    wait_for(lambda: all(nodes.knows(i, rental_id) for i in range(3)), 10, "the nodes to learn the rental")
    learned_s = time.monotonic() - t0
    for i in range(3):
        assert nodes.health(i)["chain"]["rentals"]["active"] == 1

    # -- the replay agent sends the real H100 trace to the three nodes -------------------------------
    stop = threading.Event()
    agent = Agent(source=source, spool=Spool(nodes.tmp / f"agent-{rental_id}.sqlite3"), private_key=AGENT_KEY,
                  rental_id=rental_id, nodes=nodes.urls, chain_id=deployed.chain.chain_id, market=deployed.market,
                  sample_hz=4.0, batch_samples=10,
                  stop=stop, drain_timeout_s=3.0, request_timeout_s=2.0)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    stop.set()
    assert not thread.is_alive(), "the replay agent did not finish"

    # -- nobody calls settle: the nodes do, until everything the agent sent is paid for --------------
    def held() -> int | None:
        reports = [httpx.get(f"{u}/v1/rentals/{rental_id}/report", timeout=5).json() for u in nodes.urls]
        sequences = {r["sequence"] for r in reports}
        return sequences.pop() if len(sequences) == 1 else None

    final_sequence = wait_for(held, 10, "the three nodes to hold the same batches")
    try:
        wait_for(lambda: gov.get_rental(rental_id)["sequence"] == final_sequence, 30,
                 f"the nodes to settle sequence {final_sequence}")
    except AssertionError:
        print(nodes.logs())
        raise
    rental = gov.get_rental(rental_id)
    report = httpx.get(f"{nodes.urls[0]}/v1/rentals/{rental_id}/report",
                       params={"sequence": final_sequence}, timeout=5).json()["report"]
    assert report["available_gpu_seconds"] == source.duration_ms // 1000  # the whole trace
    assert rental["availableGpuSeconds"] == report["available_gpu_seconds"]
    assert rental["paid"] > 0 and rental["sequence"] > 0
    assert rental["paid"] == gov.cost_of(rental_id, report["available_gpu_seconds"], report["energy_millijoules"])

    # -- the settlements were sent by node keys (the provider and renter only opened and started) ----
    sent = node_transactions(w3, deployed.deployment.block_number, nodes.addresses)
    landed = [(tx, receipt) for tx, receipt in sent if receipt["status"] == 1]
    reverted = [(tx, receipt) for tx, receipt in sent if receipt["status"] != 1]
    assert landed, "no node submitted a settlement"
    assert all(tx["to"] == deployed.market for tx, _ in sent)
    settled_by = {tx["from"] for tx, _ in landed}
    assert settled_by <= set(nodes.addresses)
    settled_events = [s for _, receipt in landed for s in from_receipt(gov.market.contract, receipt)]
    assert {s.rental_id for s in settled_events} == {rental_id}
    assert sum(s.payment for s in settled_events) == rental["paid"]

    # -- /metrics counted it: submissions by result, gas, follower state, last settled sequence ------
    def metrics_settled() -> list[dict] | None:
        scraped = [metrics_of(u) for u in nodes.urls]
        ok = all(metric_sum(m, "gpurent_node_chain_last_settled_sequence", rental_id=str(rental_id))
                 == final_sequence for m in scraped)
        return scraped if ok else None

    scraped = wait_for(metrics_settled, 60, "every node to see the final sequence settled", interval_s=0.3)
    settled_count = sum(metric_sum(m, "gpurent_node_submissions_total", result="settled") for m in scraped)
    assert settled_count == len(landed)
    gas_settled = sum(metric_sum(m, "gpurent_node_settlement_gas_total", outcome="settled") for m in scraped)
    assert gas_settled == sum(int(r["gasUsed"]) for _, r in landed)
    gas_reverted = sum(metric_sum(m, "gpurent_node_settlement_gas_total", outcome="reverted") for m in scraped)
    assert gas_reverted == sum(int(r["gasUsed"]) for _, r in reverted)  # a lost race, if any, is counted
    # The stagger (rank x 2.5 s, then a fresh read of the rental) lets the first-ranked node settle and
    # the others find it settled before sending: a stale report is not sent again and again.
    assert len(reverted) <= 1, [r["transactionHash"].hex() for _, r in reverted]
    for m in scraped:
        assert metric_sum(m, "gpurent_node_chain_up") == 1
        assert metric_sum(m, "gpurent_node_chain_follower_events_total") >= 1
        assert metric_sum(m, "gpurent_node_chain_rentals", state="active") == 1
        assert metric_sum(m, "gpurent_node_chain_follower_lag_blocks") <= 1
        assert metric_sum(m, "gpurent_node_batches_accepted_total") >= 1
    already = sum(metric_sum(m, "gpurent_node_submissions_total", result="already_settled") for m in scraped)
    nothing_new = sum(metric_sum(m, "gpurent_node_submissions_total", result="nothing_new") for m in scraped)
    health = nodes.health(0)["chain"]
    assert health["state"] == "following" and health["follower"]["lag_blocks"] <= 1

    print("\nNODE-SETTLED " + json.dumps({
        "rental_id": rental_id, "sequence": final_sequence, "paid": rental["paid"],
        "settle_txs": len(landed), "reverted_txs": len(reverted),
        "settled_by": sorted({nodes.addresses.index(a) + 1 for a in settled_by}),
        "already_settled": already, "nothing_new": nothing_new,
        "gas_settled": gas_settled, "gas_reverted": gas_reverted,
        "learned_after_s": round(learned_s, 1), "wall_s": round(time.monotonic() - t0, 1),
    }))


def _settings(tmp_path: Path, **values):
    from oracle.node.settings import load_settings

    return load_settings(env={}, dev_mode=True, private_key="0x" + "c1" * 32, chain_id=31337,
                         db_path=str(tmp_path / "node.sqlite3"), **values)


def test_an_unreachable_rpc_endpoint_does_not_stop_the_api(deployed, tmp_path):
    from oracle.node.app import create_app

    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app(_settings(tmp_path, market_address=deployed.market, rpc_url=dead, chain_poll_interval_s=0.1))
    with TestClient(app) as client:
        wait_for(lambda: client.get("/healthz").json()["chain"]["state"] != "starting", 5, "a first RPC attempt")
        health = client.get("/healthz")
        assert health.status_code == 200  # liveness: the API serves on
        chain = health.json()["chain"]
        assert chain["state"] == "rpc_unreachable", chain
        assert "Connection" in chain["detail"] or "connect" in chain["detail"].lower(), chain
        assert metric_sum(parse_metrics(client.get("/metrics").text), "gpurent_node_chain_up") == 0
        assert client.get("/v1/node").status_code == 200


def test_a_wrong_chain_or_a_market_without_code_is_refused_at_startup(deployed, tmp_path):
    from oracle.node.app import create_app

    with pytest.raises(ConfigError, match="serves chain 31337, but chain_id is 5"):
        create_app(_settings(tmp_path, market_address=deployed.market, rpc_url=deployed.chain.url)
                   .model_copy(update={"chain_id": 5}))
    with pytest.raises(ConfigError, match="no contract at market_address"):
        create_app(_settings(tmp_path, market_address="0x" + "42" * 20, rpc_url=deployed.chain.url))


def test_idle_rentals_skip_settlement_rounds():
    """DueRentals (pure): a rental costs a round (RPC reads, peer requests) only when this node
    holds batches the chain has not settled, or after ``recheck_s``."""
    from oracle.node.settlement_loop import DueRentals
    from oracle.node.quorum import Outcome

    heads, settleable, now = {1: 0, 2: 5}, [1, 2], [0.0]
    due = DueRentals(lambda: list(settleable), heads.__getitem__, recheck_s=60, lag_retry_s=2,
                     clock=lambda: now[0])
    assert due() == [1, 2]
    due.record(Outcome(1, "no_quorum", chain_sequence=0))  # no batches anywhere yet
    due.record(Outcome(2, "settled", sequence=5, chain_sequence=5))
    assert due() == []  # everything held is settled
    heads[1] = 3
    assert due() == [1]  # a new batch arrived
    due.record(Outcome(1, "nothing_new", sequence=3, chain_sequence=3))  # settled by another node meanwhile
    due.record(Outcome(1, "slashed", fault_id=0))  # fault outcomes say nothing about the sequence
    assert due() == []  # everything held is settled
    heads[1] = 4
    assert due() == [1]
    due.record(Outcome(1, "nothing_new", sequence=3, chain_sequence=3))  # a peer has not received batch 4 yet
    assert due() == []
    now[0] = 2.0
    assert due() == [1]  # retried soon: the peer may have caught up
    due.record(Outcome(1, "nothing_new", sequence=3, chain_sequence=3))  # still behind: back off
    now[0] = 5.0
    assert due() == []
    now[0] = 6.0
    assert due() == [1]
    due.record(Outcome(1, "nothing_new", sequence=3, chain_sequence=3))
    now[0] = 13.0
    assert due() == []
    now[0] = 14.0
    assert due() == [1]  # 2, 4, 8 s: a peer that never catches up costs little
    due.record(Outcome(1, "settled", sequence=4, chain_sequence=4))
    assert due() == []
    now[0] = 75.0
    assert sorted(due()) == [1, 2]  # rechecked after recheck_s (2 first: looked at longest ago)
    assert due.last_settled == {1: 4, 2: 5}
    settleable.remove(2)  # finalized
    assert due() == [1]  # not recorded since the recheck
    assert due.last_settled == {1: 4}
    assert DueRentals(lambda: [4, 5])() == [4, 5]  # without local heads: every round


def test_a_lagging_peer_delays_settlement_by_rounds_not_by_the_recheck_interval():
    """The race CI met: this node holds batch 9, a peer signs only up to 8 (settled) when the round
    asks; the batch reaches the peer a moment later. The next round after ``lag_retry_s`` settles 9."""
    from oracle.node.settlement_loop import DueRentals
    from oracle.node.quorum import Outcome

    now = [0.0]
    due = DueRentals(lambda: [7], {7: 9}.__getitem__, recheck_s=600, lag_retry_s=1, clock=lambda: now[0])
    assert due() == [7]
    due.record(Outcome(7, "nothing_new", sequence=8, chain_sequence=8))
    now[0] = 1.0
    assert due() == [7]
