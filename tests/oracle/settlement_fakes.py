"""Fault injection for settlement at scale: a scripted market (the chain side the aggregator
uses) and scripted peer nodes (httpx.MockTransport) that sign real EIP-712 reports with real keys,
refuse what a real node refuses (more than 256 reports per batch-signature request) and answer
429 with Retry-After when told to. Nothing here meters: reports are a function of
(rental, sequence)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Callable

import httpx
from eth_account import Account

from oracle.attestation.eip712 import UsageReport, usage_batch_digest, usage_report_digest
from oracle.attestation.signing import sign_digest
from oracle.chain.client import SignerSet, recover
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.tx import TxResult
from oracle.node.attestor import report_fields

CHAIN_ID = 31337
MARKET = "0x" + "ab" * 20
KEYS = [bytes([0xC1]) * 32, bytes([0xC2]) * 32, bytes([0xC3]) * 32]
BASE_TIME = 1_790_000_000


def report_of(rental_id: int, sequence: int, version: int = 1) -> UsageReport:
    """A deterministic report (fields the struct does not have yet are left out)."""
    values = {"rental_id": rental_id, "sequence": sequence, "period_end": BASE_TIME + 10 * sequence,
              "available_gpu_seconds": 10 * sequence, "busy_gpu_seconds": 5 * sequence,
              "energy_millijoules": 1_000 * sequence, "carbon_milligrams": 4 * sequence, "uptime_bps": 10_000,
              "fault_flags": 0, "challenges_passed": 0, "challenges_failed": 0,
              "telemetry_hash": bytes([rental_id % 251]) * 32, "signer_set_version": version}
    return UsageReport(**{name: values[name] for name in UsageReport.__dataclass_fields__})


class FakeMarket:
    """The chain as the aggregator sees it: rentals' settled sequences, settle/settleBatch."""

    def __init__(self, rental_ids, *, max_batch: int = 200, threshold: int = 2, keys=KEYS) -> None:
        self.chain_id, self.address, self.account = CHAIN_ID, MARKET, Account.from_key(keys[0]).address
        self.market = None  # no contract cap view: the aggregator's own cap applies
        self.signers = tuple(sorted((Account.from_key(k).address for k in keys), key=lambda a: int(a, 16)))
        self.threshold = threshold
        self.max_batch = max_batch
        self.sequence = {r: 0 for r in rental_ids}
        self.batch_sizes: list[int] = []
        self.calls: Counter = Counter()

    def signer_set(self) -> SignerSet:
        return SignerSet(1, self.threshold, self.signers)

    def get_rental(self, rental_id: int) -> dict:
        self.calls["getRental"] += 1
        return {"status": 2, "statusName": "Active", "sequence": self.sequence[rental_id], "endedAt": 0,
                "lastSettledAt": BASE_TIME}

    def _check(self, digest: bytes, packed: bytes) -> None:
        sigs = [packed[i:i + 65] for i in range(0, len(packed), 65)]
        signers = [recover(digest, s) for s in sigs]
        assert len(signers) >= self.threshold and all(s in self.signers for s in signers)
        assert [int(s, 16) for s in signers] == sorted(int(s, 16) for s in signers)

    def settle_batch(self, reports, packed: bytes) -> TxResult:
        self.calls["settleBatch"] += 1
        if len(reports) > self.max_batch:
            raise TransactionRevertedError("UsageSettlement_BatchTooLarge", {"length": len(reports)})
        self._check(usage_batch_digest(reports, CHAIN_ID, MARKET), packed)
        self.batch_sizes.append(len(reports))
        settled = []
        for r in reports:
            assert r.sequence > self.sequence[r.rental_id]
            self.sequence[r.rental_id] = r.sequence
            settled += [r.rental_id, r.sequence, 1]
        return TxResult("0x" + "11" * 32, None, 12_000 * len(reports), 1, 1, {"UsageBatchSettled": [{"settled": settled}]})

    def settle(self, report, packed: bytes) -> TxResult:
        self.calls["settle"] += 1
        self._check(usage_report_digest(report, CHAIN_ID, MARKET), packed)
        self.sequence[report.rental_id] = report.sequence
        return TxResult("0x" + "22" * 32, None, 68_000, 1, 1,
                        {"UsageSettled": [{"rentalId": report.rental_id, "sequence": report.sequence, "payment": 1}]})


class FakePeers:
    """Peer nodes by host name; ``rate_limit(host, request_number) -> Retry-After or None``."""

    def __init__(self, hosts_keys: dict[str, bytes], *, holds: Callable[[int], int] = lambda r: 3,
                 rate_limit: Callable[[str, int], float | None] = lambda host, n: None,
                 max_refs: int = 256) -> None:
        self.keys = hosts_keys
        self.holds = holds
        self.rate_limit = rate_limit
        self.max_refs = max_refs
        self.requests: Counter = Counter()
        self.refused: Counter = Counter()
        self.batch_request_sizes: list[int] = []
        self.log: list[tuple[str, str, float]] = []
        self._sigs: dict = {}
        self.by_path: defaultdict = defaultdict(int)
        self.recorded: set = set()  # (host, rental, sequence) a host served: all it will batch-sign

    def _signed(self, host: str, report) -> dict:
        key = (host, report.rental_id, report.sequence)
        self.recorded.add(key)
        if key not in self._sigs:
            digest = usage_report_digest(report, CHAIN_ID, MARKET)
            self._sigs[key] = {"report": report_fields(report), "digest": "0x" + digest.hex(),
                               "signature": "0x" + sign_digest(self.keys[host], digest).hex(),
                               "signer": Account.from_key(self.keys[host]).address}
        return self._sigs[key]

    def handle(self, request: httpx.Request) -> httpx.Response:
        import time

        host = request.url.host
        self.requests[host] += 1
        self.log.append((host, request.url.path, time.monotonic()))
        wait = self.rate_limit(host, self.requests[host])
        if wait is not None:
            self.refused[host] += 1
            return httpx.Response(429, headers={"Retry-After": str(wait)}, json={"detail": "rate limited"})
        parts = request.url.path.strip("/").split("/")
        if request.method == "GET" and parts[-1] == "report":
            rental_id = int(parts[2])
            sequence = int(request.url.params.get("sequence", self.holds(rental_id)))
            return httpx.Response(200, json=self._signed(host, report_of(rental_id, sequence)))
        if request.method == "GET" and parts[-1] == "faults":
            return httpx.Response(200, json={"rental_id": int(parts[2]), "sequence": 0, "faults": []})
        if request.method == "POST" and parts[-1] == "batch-signatures":
            refs = json.loads(request.content)["reports"]
            self.batch_request_sizes.append(len(refs))
            if len(refs) > self.max_refs:
                return httpx.Response(422, json={"detail": f"at most {self.max_refs} reports"})
            missing = [r for r in refs if (host, r["rental_id"], r["sequence"]) not in self.recorded]
            if missing:  # a real node signs only reports it recorded itself
                return httpx.Response(404, json={"detail": f"no report for rental {missing[0]['rental_id']}"})
            reports = [report_of(r["rental_id"], r["sequence"]) for r in refs]
            digest = usage_batch_digest(reports, CHAIN_ID, MARKET)
            return httpx.Response(200, json={"digest": "0x" + digest.hex(),
                                             "signature": "0x" + sign_digest(self.keys[host], digest).hex(),
                                             "signer": Account.from_key(self.keys[host]).address,
                                             "reports": []})
        return httpx.Response(404, json={"detail": "no route"})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))
