"""Claiming payment as a provider: ask the oracle nodes for their signed report of a rental and
submit a quorum of identical ones (``gpurent provider settle``).

Nodes' own aggregation (``oracle.node.aggregator``) settles continuously; this is the path the
architecture leaves to anyone holding a quorum of signatures, e.g. a provider who wants to be
paid now. The contract pays the same whoever submits.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import httpx

from oracle.errors import GpurentError

REPORT_FIELDS = ("rental_id", "sequence", "period_end", "available_gpu_seconds", "busy_gpu_seconds",
                 "energy_millijoules", "carbon_milligrams", "uptime_bps", "fault_flags", "telemetry_hash",
                 "signer_set_version")


class QuorumUnavailable(GpurentError, RuntimeError):
    """Fewer nodes than the threshold signed the same report."""


def _get_report(client: httpx.Client, url: str, rental_id: int, sequence: int | None) -> dict[str, Any] | str:
    params = {} if sequence is None else {"sequence": sequence}
    try:
        response = client.get(f"{url}/v1/rentals/{rental_id}/report", params=params)
    except httpx.HTTPError as exc:
        return f"unreachable ({exc.__class__.__name__})"
    if response.status_code != 200:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:200]
        return f"HTTP {response.status_code}: {detail}"
    return response.json()


def collect_quorum(node_urls: Sequence[str], rental_id: int, threshold: int,
                   timeout_s: float = 10.0) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """(report fields, concatenated signatures in ascending signer order, per-node notes).

    Asks every node for its latest report; picks the highest sequence that at least
    ``threshold`` nodes hold, asks the others for that sequence, and keeps the signatures over
    the digest that ``threshold`` nodes agree on.
    """
    notes: dict[str, str] = {}
    urls = [u.rstrip("/") for u in node_urls]
    with httpx.Client(timeout=timeout_s) as client:
        first: dict[str, dict[str, Any]] = {}
        for url in urls:
            got = _get_report(client, url, rental_id, None)
            if isinstance(got, str):
                notes[url] = got
            else:
                first[url] = got
        sequences = sorted((r["sequence"] for r in first.values()), reverse=True)
        if len(sequences) < threshold:
            raise QuorumUnavailable(f"rental {rental_id}: {len(sequences)} of {len(urls)} nodes gave a report, "
                                    f"{threshold} needed ({'; '.join(f'{u}: {n}' for u, n in notes.items())})")
        target = sequences[threshold - 1]
        by_digest: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for url, report in first.items():
            if report["sequence"] != target:
                got = _get_report(client, url, rental_id, target)
                if isinstance(got, str):
                    notes[url] = got
                    continue
                report = got
            by_digest[report["digest"]].append(report)
            notes[url] = f"signed sequence {target}"
    digest, signed = max(by_digest.items(), key=lambda item: len(item[1]))
    if len(signed) < threshold:
        raise QuorumUnavailable(f"rental {rental_id}: nodes disagree on the report for sequence {target} "
                                f"({len(by_digest)} different digests); {threshold} identical needed")
    signed = sorted(signed, key=lambda r: int(r["signer"], 16))[:threshold]
    signatures = b"".join(bytes.fromhex(r["signature"][2:]) for r in signed)
    return signed[0]["report"], signatures, notes


def report_tuple(report: dict[str, Any]) -> tuple:
    values = []
    for name in REPORT_FIELDS:
        value = report[name]
        values.append(bytes.fromhex(value[2:]) if isinstance(value, str) else int(value))
    return tuple(values)


def settle_from_nodes(session: Any, rental_id: int, node_urls: Sequence[str]) -> dict[str, Any]:
    """Collect a quorum from ``node_urls`` and submit ``settle``; returns what happened."""
    _, threshold, _ = session.market.call("signerSet")
    report, signatures, notes = collect_quorum(node_urls, rental_id, int(threshold))
    last = int(session.market.call("getRental", rental_id)[2])
    if report["sequence"] <= last:
        return {"rental_id": rental_id, "settled": False, "sequence": report["sequence"],
                "reason": f"sequence {last} already settled", "nodes": notes}
    result = session.market.transact("settle", report_tuple(report), signatures)
    payment = sum(int(ev["payment"]) for ev in result.events.get("UsageSettled", []))
    return {"rental_id": rental_id, "settled": True, "sequence": report["sequence"], "payment": payment,
            "report": report, "tx": result.tx_hash, "gas_used": result.gas_used, "nodes": notes}
