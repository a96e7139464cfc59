"""Decoding for the web index: ABI values to JSON, settlement and slash calldata to reports + signers.

The reports a settlement paid for are not in its logs (``UsageSettled`` has only the rental,
sequence and payment); they are in the transaction's calldata: ``settle``/``settleBatch`` on the
market, or ``settleFor``/``settleBatchFor`` on the OperatorRegistry. The signers are recovered
from the calldata's signatures over the EIP-712 digest computed here (pure core), so the index
shows who attested each report without asking a node.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Sequence

from eth_utils import to_checksum_address
from hexbytes import HexBytes

from oracle.attestation.eip712 import (FaultReport, UsageReport, fault_report_digest, usage_batch_digest,
                                       usage_report_digest)
from oracle.attestation.signing import recover_signer

SIGNATURE_BYTES = 65
USAGE_METHODS = {"settle", "settleBatch", "settleFor", "settleBatchFor"}


def jsonable(value: Any, param: Mapping[str, Any] | None = None) -> Any:
    """An ABI value as JSON: structs as dicts (ABI names), bytes as 0x hex, addresses checksummed."""
    t = param.get("type", "") if param else ""
    if t.endswith("]") and isinstance(value, (list, tuple)):
        inner = dict(param, type=t[: t.rindex("[")])  # type: ignore[arg-type]
        return [jsonable(v, inner) for v in value]
    if t == "tuple":
        comps = param["components"]  # type: ignore[index]
        if isinstance(value, Mapping):
            return {c["name"]: jsonable(value[c["name"]], c) for c in comps}
        return {c["name"]: jsonable(v, c) for c, v in zip(comps, value)}
    if t == "address" and isinstance(value, str):
        return to_checksum_address(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if hasattr(value, "to_0x_hex"):
        return value.to_0x_hex()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def split_signatures(signatures: bytes) -> list[bytes]:
    return [signatures[i:i + SIGNATURE_BYTES] for i in range(0, len(signatures) - SIGNATURE_BYTES + 1, SIGNATURE_BYTES)]


def recover_all(digest: bytes, signatures: bytes) -> list[str]:
    out = []
    for sig in split_signatures(bytes(signatures)):
        try:
            out.append(recover_signer(digest, sig))
        except Exception:  # a malformed signature cannot have settled; show nothing for it
            continue
    return out


def _usage_report(report: Mapping[str, Any]) -> UsageReport:
    return UsageReport(
        rental_id=int(report["rentalId"]), sequence=int(report["sequence"]), period_end=int(report["periodEnd"]),
        available_gpu_seconds=int(report["availableGpuSeconds"]), busy_gpu_seconds=int(report["busyGpuSeconds"]),
        energy_millijoules=int(report["energyMillijoules"]), carbon_milligrams=int(report["carbonMilligrams"]),
        uptime_bps=int(report["uptimeBps"]), fault_flags=int(report["faultFlags"]),
        challenges_passed=int(report["challengesPassed"]), challenges_failed=int(report["challengesFailed"]),
        telemetry_hash=bytes(HexBytes(report["telemetryHash"])), signer_set_version=int(report["signerSetVersion"]),
    )


def _fn_abi(abi: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((f for f in abi if f.get("type") == "function" and f.get("name") == name), None)


class CalldataDecoder:
    """Decodes settlement / slash transactions sent to the market or the operator registry."""

    def __init__(self, w3: Any, chain_id: int, market: str, market_abi: Sequence[Mapping[str, Any]],
                 registry: str | None = None, registry_abi: Sequence[Mapping[str, Any]] | None = None,
                 cache_size: int = 256) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self.market = to_checksum_address(market)
        self._contracts = {self.market: (w3.eth.contract(address=self.market, abi=list(market_abi)), market_abi)}
        if registry and registry_abi:
            reg = to_checksum_address(registry)
            self._contracts[reg] = (w3.eth.contract(address=reg, abi=list(registry_abi)), registry_abi)
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        """{"method", "submitter", "reports": [report + "signers"], "fault": fault + "signers" | None}."""
        if tx_hash in self._cache:
            return self._cache[tx_hash]
        tx = self.w3.eth.get_transaction(tx_hash)
        out = self.decode(tx.get("to"), bytes(HexBytes(tx["input"])), to_checksum_address(tx["from"]))
        self._cache[tx_hash] = out
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def decode(self, to: str | None, data: bytes, submitter: str) -> dict[str, Any]:
        out: dict[str, Any] = {"method": None, "submitter": submitter, "reports": [], "fault": None}
        entry = self._contracts.get(to_checksum_address(to)) if to else None
        if entry is None or len(data) < 4:
            return out  # sent through another contract: the reports are not in this calldata
        contract, abi = entry
        try:
            fn, args = contract.decode_function_input(data)
        except Exception:
            return out
        name = fn.fn_name
        out["method"] = name
        fn_abi = _fn_abi(abi, name)
        params = {p["name"]: p for p in (fn_abi or {}).get("inputs", [])}
        decoded = {k: jsonable(v, params.get(k)) for k, v in args.items()}
        signatures = bytes(HexBytes(decoded.get("signatures", "0x")))
        if name in ("settle", "settleFor"):
            report = decoded["report"]
            signers = recover_all(usage_report_digest(_usage_report(report), self.chain_id, self.market), signatures)
            out["reports"] = [{**report, "signers": signers}]
        elif name in ("settleBatch", "settleBatchFor"):
            reports = decoded["reports"]
            digest = usage_batch_digest([_usage_report(r) for r in reports], self.chain_id, self.market)
            signers = recover_all(digest, signatures)
            out["reports"] = [{**r, "signers": signers} for r in reports]
        elif name == "slash":
            fault = decoded["report"]
            report = FaultReport(
                rental_id=int(fault["rentalId"]), fault_id=int(fault["faultId"]), kind=int(fault["kind"]),
                observed_at=int(fault["observedAt"]), evidence_hash=bytes(HexBytes(fault["evidenceHash"])),
                signer_set_version=int(fault["signerSetVersion"]),
            )
            out["fault"] = {**fault, "signers": recover_all(fault_report_digest(report, self.chain_id, self.market),
                                                            signatures)}
        return out
