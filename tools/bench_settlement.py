#!/usr/bin/env python
"""Benchmark a settlement round: N active rentals, three real attestation nodes (in-process
FastAPI apps with their real SQLite storage, metering and signing), one aggregator collecting a
2-of-3 quorum for every rental and asking for one batch signature per settleBatch.

The chain is scripted (no anvil: it would measure anvil, not the node): it checks every quorum
signature and settles, so what is measured is the nodes' report work and the aggregator's.
Round 1 meters and signs every rental's reports; round 2 comes after one more batch per rental
(what a steady-state round costs); round 3 with nothing new (served from storage).

Usage: .venv/bin/python tools/bench_settlement.py [--rentals 1000] [--batches 6]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from eth_account import Account  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from oracle.attestation.eip712 import usage_batch_digest, usage_report_digest  # noqa: E402
from oracle.chain.client import SignerSet, recover  # noqa: E402
from oracle.chain.tx import TxResult  # noqa: E402
from oracle.node.aggregator import Aggregator  # noqa: E402
from oracle.node.app import create_app  # noqa: E402
from oracle.node.settings import NodeSettings  # noqa: E402
from oracle.node.testing import AGENT_KEY, chain_batches, shifted, trace_samples  # noqa: E402
from oracle.telemetry.batches import address_of  # noqa: E402

CHAIN_ID = 31337
MARKET = "0x" + "42" * 20
KEYS = [bytes([0xC1]) * 32, bytes([0xC2]) * 32, bytes([0xC3]) * 32]


class ScriptedMarket:
    """Rentals' settled sequences; settle_batch checks the quorum signature like the contract."""

    def __init__(self, rentals: list[int]) -> None:
        self.chain_id, self.address, self.market = CHAIN_ID, MARKET, None
        self.account = Account.from_key(KEYS[0]).address
        self.signers = tuple(sorted((Account.from_key(k).address for k in KEYS), key=lambda a: int(a, 16)))
        self.sequence = {r: 0 for r in rentals}
        self.transactions = 0

    def signer_set(self) -> SignerSet:
        return SignerSet(1, 2, self.signers)

    def get_rental(self, rental_id: int) -> dict:
        return {"status": 2, "statusName": "Active", "sequence": self.sequence[rental_id], "endedAt": 0,
                "lastSettledAt": 0}

    def settle_batch(self, reports, packed: bytes) -> TxResult:
        digest = usage_batch_digest(reports, CHAIN_ID, MARKET)
        assert all(recover(digest, packed[i:i + 65]) in self.signers for i in range(0, len(packed), 65))
        self.transactions += 1
        for report in reports:
            self.sequence[report.rental_id] = report.sequence
        return TxResult("0x" + "11" * 32, None, 0, 0, 0, {})

    def settle(self, report, packed: bytes) -> TxResult:
        digest = usage_report_digest(report, CHAIN_ID, MARKET)
        assert all(recover(digest, packed[i:i + 65]) in self.signers for i in range(0, len(packed), 65))
        self.transactions += 1
        self.sequence[report.rental_id] = report.sequence
        return TxResult("0x" + "22" * 32, None, 0, 0, 0, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rentals", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=6, help="10-sample batches per rental before round 1")
    args = parser.parse_args()
    samples = trace_samples()
    now_ms = int(time.time() * 1000)
    per_rental = shifted(samples[: 10 * (args.batches + 1)], now_ms - 2_000)
    start_ms = per_rental[0].t_ms
    rentals = list(range(1, args.rentals + 1))
    chains = {r: chain_batches(AGENT_KEY, r, per_rental, samples_per_batch=10) for r in rentals}

    with tempfile.TemporaryDirectory() as tmp:
        apps = {}
        for i, key in enumerate(KEYS):
            settings = NodeSettings(
                dev_mode=True, private_key="0x" + key.hex(), chain_id=CHAIN_ID, market_address=MARKET,
                db_path=Path(tmp) / f"node-{i}.sqlite3", report_rate_per_s=1e9, report_burst=10**9,
                ip_rate_per_s=1e9, ip_burst=10**9, agent_rate_per_s=1e9, agent_burst=10**9,
                rentals=[{"rental_id": r, "agent": address_of(AGENT_KEY), "gpu_count": 1,
                          "grid_intensity_g_per_kwh": 400, "start_ms": start_ms} for r in rentals],
            )
            apps[f"n{i + 1}"] = TestClient(create_app(settings, clock=lambda: now_ms))

        def ingest(upto: int, first: int) -> None:
            for client in apps.values():
                for r in rentals:
                    for batch in chains[r][first:upto]:
                        assert client.post(f"/v1/rentals/{batch.rental_id}/batches", content=batch.to_wire_bytes()).status_code == 200

        def route(request: httpx.Request) -> httpx.Response:
            answer = apps[request.url.host].request(request.method, request.url.path, params=request.url.params,
                                                    content=request.content,
                                                    headers={"content-type": "application/json"})
            return httpx.Response(answer.status_code, content=answer.content)

        market = ScriptedMarket(rentals)
        aggregator = Aggregator(market, [f"http://{h}" for h in apps], http=httpx.Client(
            transport=httpx.MockTransport(route)))
        results = []
        ingest(args.batches, 0)
        for label, extra in (("round 1 (every report new)", True), ("round 2 (one new batch each)", False),
                             ("round 3 (nothing new)", None)):
            if extra is False:
                ingest(args.batches + 1, args.batches)
            wall, cpu = time.perf_counter(), time.process_time()
            outcomes = aggregator.settle_batch(rentals)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            statuses = {s: sum(1 for o in outcomes if o.status == s) for s in {o.status for o in outcomes}}
            results.append({"round": label, "rentals": len(rentals), "wall_s": round(wall, 2),
                            "cpu_s": round(cpu, 2), "cpu_ms_per_rental": round(1000 * cpu / len(rentals), 2),
                            "outcomes": statuses, "transactions": market.transactions})
        for client in apps.values():
            client.close()
    print(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                      "nodes": 3, "threshold": 2, "batches_per_rental": args.batches, "rounds": results},
                     indent=2))


if __name__ == "__main__":
    main()
