"""Watching the oracle nodes and the chain while the demo's rental runs: readiness, the
settlements as they land, a node's own report, the proof-of-GPU record, a block ticker."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from oracle.demo.base import DEPLOYER, DemoError


def _get_json(url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.get(url, params=params, timeout=5)
    except httpx.HTTPError:
        return {}
    return response.json() if response.status_code == 200 else {}


def _knows(url: str, rental_id: int) -> bool:
    """Whether the node meters the rental: 404 'meters no rental' vs 409 'no batches yet' or 200."""
    import httpx

    try:
        status = httpx.get(f"{url}/v1/rentals/{rental_id}/report", timeout=5).status_code
    except httpx.HTTPError:
        return False
    return status in (200, 409)


def _wait_nodes(urls: Sequence[str], procs: Sequence[subprocess.Popen], logs: Sequence[Path], what: str,
                timeout_s: float, ready: Callable[[str], bool]) -> None:
    """Until ``ready(url)`` holds for every node; a clear error naming the logs of those that lag."""
    deadline = time.monotonic() + timeout_s
    waiting = list(range(len(urls)))
    while True:
        for i in waiting:
            if procs[i].poll() is not None:
                raise DemoError(f"node {urls[i]} exited with {procs[i].returncode}; see {logs[i]}")
        waiting = [i for i in waiting if not ready(urls[i])]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise DemoError(f"node(s) {', '.join(urls[i] for i in waiting)} did not {what} within "
                            f"{timeout_s:.0f} s; see {', '.join(str(logs[i]) for i in waiting)}")
        time.sleep(0.2)


def _fund_node_keys(rpc: str, addresses: Sequence[str], eth: int = 10) -> list[str]:
    """Send each node key some ETH from the deployer's dev account (the nodes pay settlement gas)."""
    from oracle.localchain import _rpc, dev_address

    txs = [_rpc(rpc, "eth_sendTransaction", [{"from": dev_address(DEPLOYER), "to": address,
                                              "value": hex(eth * 10**18)}]) for address in addresses]
    for _ in range(100):  # a block per transaction on anvil; wait for the last one
        if _rpc(rpc, "eth_getTransactionReceipt", [txs[-1]]):
            return txs
        time.sleep(0.1)
    raise DemoError(f"funding the node keys: transaction {txs[-1]} was not mined")


def _final_sequence(urls: Sequence[str], rental_id: int, threshold: int, logs: Sequence[Path],
                    timeout_s: float = 15.0) -> int:
    """The newest report a quorum of the live nodes holds once they agree (the agent has drained)."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = sorted((_get_json(f"{url}/v1/rentals/{rental_id}/report").get("report", {}).get("sequence", 0)
                       for url in urls), reverse=True)
        if len(held) >= threshold and held[threshold - 1] > 0 and (len(set(held)) == 1
                                                                  or time.monotonic() > deadline):
            return held[threshold - 1]
        if time.monotonic() > deadline:
            raise DemoError(f"fewer than {threshold} live nodes hold a report of rental {rental_id} "
                            f"(sequences {held}); see {', '.join(map(str, logs))}")
        time.sleep(0.3)


def _settlement_state(urls: Sequence[str]) -> str:
    """What each node's /healthz says about its settlement loop (for an error message)."""
    parts = []
    for url in urls:
        chain = _get_json(url + "/healthz").get("chain", {})
        settlement = chain.get("settlement", {})
        parts.append(f"{url}: state {chain.get('state')}, round errors {settlement.get('round_errors')}, "
                     f"last submission {settlement.get('last_submission')}")
    return "; ".join(parts)


class _SettlementWatch:
    """The rental's settlements as they land (``UsageSettled``, and its entries of a batch's
    ``UsageBatchSettled``), and who sent each transaction (read from the chain: the demo itself
    never settles)."""

    def __init__(self, rpc: str, market: str, rental_id: int, from_block: int, node_addresses: Sequence[str],
                 decimals: int, symbol: str) -> None:
        from oracle.chain.artifacts import load_abi
        from oracle.chain.contract import connect

        self.w3 = connect(rpc)
        self.market = self.w3.eth.contract(address=market, abi=load_abi("GpuRentMarket"))
        self.rental_id = rental_id
        self.next_block = from_block
        self.nodes = {address: f"node-{i + 1}" for i, address in enumerate(node_addresses)}
        self.scale, self.symbol = 10 ** decimals, symbol
        self.settlements: list[dict[str, Any]] = []
        self.available_gpu_seconds = 0

    @property
    def sequence(self) -> int:
        return self.settlements[-1]["sequence"] if self.settlements else 0

    def poll(self) -> list[str]:
        """New settlements since the last poll, one line each."""
        head = self.w3.eth.block_number
        if head < self.next_block:
            return []
        from oracle.chain.settlements import get_settlements

        logs = get_settlements(self.market, self.next_block, head, rental_id=self.rental_id)
        self.next_block = head + 1
        lines = []
        for ev in logs:
            tx = self.w3.eth.get_transaction(ev.tx_hash)
            submitter = tx["from"]
            entry = {"sequence": ev.sequence, "payment": ev.payment,
                     "tx": ev.tx_hash, "submitter": submitter,
                     "node": self.nodes.get(submitter), "block": int(ev.block_number)}
            self.settlements.append(entry)
            lines.append(f"report {entry['sequence']} settled by {entry['node'] or 'a non-node account'} "
                         f"({submitter[:10]}…): +{entry['payment'] / self.scale:.6f} {self.symbol}")
        if logs:
            self.available_gpu_seconds = int(self.market.functions.getRental(self.rental_id).call()[3])  # availableGpuSeconds
        return lines


def _node_report(urls: Sequence[str], rental_id: int, sequence: int) -> dict[str, Any] | None:
    """One node's signed report for the settled sequence (a node's own view of the numbers)."""
    import httpx

    for url in urls:
        try:
            r = httpx.get(f"{url}/v1/rentals/{rental_id}/report", params={"sequence": sequence}, timeout=10)
        except httpx.HTTPError:
            continue
        if r.status_code == 200:
            body = r.json()
            return {"node": url, "signer": body["signer"], **body["report"]}
    return None


class _BlockTicker:
    """Mines an empty block every ``interval_s`` in a daemon thread until ``stop()``."""

    def __init__(self, rpc: str, interval_s: float = 1.0) -> None:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(rpc, interval_s), name="demo-blocks", daemon=True)
        self._thread.start()

    def _run(self, rpc: str, interval_s: float) -> None:
        from oracle.localchain import _rpc

        while not self._stop.wait(interval_s):
            try:
                _rpc(rpc, "evm_mine")
            except Exception:  # the chain is going away: nothing to tick
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _challenges(urls: Sequence[str], rental_id: int, ended_at_s: int = 0) -> dict[str, Any] | None:
    """The quorum's proof-of-GPU record of the rental, as the first live node reports it (unpaid
    spans clipped to the rental's end: the node's run on to its clock, which the demo moved a day on)."""
    for url in urls:
        body = _get_json(f"{url}/v1/rentals/{rental_id}/challenges")
        if body:
            end_ms = (ended_at_s + 1) * 1000 if ended_at_s else None
            unpaid = [{**span, "end_ms": min(span["end_ms"], end_ms) if end_ms else span["end_ms"]}
                      for span in body["unpaid"] if not end_ms or span["start_ms"] < end_ms]
            return {"node": url, "passed": body["passed"], "failed": body["failed"], "unpaid": unpaid,
                    "verdicts": [c["quorum"] or c["verdict"] for c in body["challenges"]],
                    "end": body.get("end_challenge")}
    return None
