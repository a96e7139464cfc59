"""Signed reports: cumulative usage reports, fault reports, and batch signatures for settleBatch.

Plain ``def`` routes: metering is CPU work and storage is blocking, so they run in the
threadpool rather than on the event loop that ingests batches.

Reads cost what they send, not what the rental's history holds: a usage report already signed
for the asked sequence is served from storage (``Attestor.usage_report``), and a page of fault
reports is metered again only when a batch arrived since it was last answered. Every route is
rate limited (``limit_report_requests``: per signer for peers, per IP for strangers).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from oracle.attestation.reports import END_CHALLENGE_FAULT_ID
from oracle.node.api.deps import NodeDep, limit_report_requests
from oracle.node.attestor import SignedReport, report_fields
from oracle.node.errors import ReportConflict
from oracle.protocol import MAX_BATCH_REPORTS

router = APIRouter(tags=["reports"], dependencies=[Depends(limit_report_requests)])

RentalIdPath = Annotated[int, Path(ge=0, lt=2**256, description="the rental's on-chain id")]
VersionQuery = Annotated[int | None, Query(ge=1, lt=2**32, description="the signer-set version to sign for "
                                                                     "(default: the node's configured one)")]
MAX_FAULTS_PER_PAGE = 256
HEX32 = r"^0x[0-9a-fA-F]{64}$"
FAULT_ANSWERS_KEPT = 1024


class SignedReportOut(BaseModel):
    report: dict[str, int | str] = Field(description="the EIP-712 struct's fields in snake_case; bytes as 0x-hex")
    digest: str = Field(description="EIP-712 digest the signature covers")
    signature: str = Field(description="65 bytes r,s,v (v in 27/28)")
    signer: str = Field(description="this node's address")


class UsageReportOut(SignedReportOut):
    rental_id: int
    sequence: int
    chain_id: int
    market_address: str


class FaultOut(BaseModel):
    fault_id: int
    signed: SignedReportOut | None = None
    refused: str | None = None


class FaultReportsOut(BaseModel):
    rental_id: int
    sequence: int = Field(description="number of batches the faults were metered over")
    faults: list[FaultOut]


class ReportRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rental_id: int = Field(ge=0, lt=2**256)
    sequence: int = Field(ge=1, lt=2**64)
    digest: str = Field(pattern=HEX32, description="the UsageReport's EIP-712 digest")


class BatchSignatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reports: list[ReportRef] = Field(min_length=1, max_length=MAX_BATCH_REPORTS)


class BatchSignatureOut(BaseModel):
    digest: str = Field(description="EIP-712 digest of UsageReportBatch(reports) in the given order")
    signature: str
    signer: str
    reports: list[dict[str, int | str]]


def _signed_out(signed: SignedReport) -> dict:
    return {
        "report": report_fields(signed.report),
        "digest": "0x" + signed.digest.hex(),
        "signature": "0x" + signed.signature.hex(),
        "signer": signed.signer,
    }


@router.get(
    "/v1/rentals/{rental_id}/report",
    response_model=UsageReportOut,
    summary="Meter the rental's batches 0..sequence-1, record the usage report, sign it",
    responses={404: {"description": "unknown rental"}, 409: {"description": "batches not held yet, "
               "or a different report is already recorded for this sequence (never signed twice)"}},
)
def get_usage_report(
    rental_id: RentalIdPath,
    node: NodeDep,
    sequence: Annotated[int | None, Query(ge=1, lt=2**64, description="default: every contiguous batch held")] = None,
    signer_set_version: VersionQuery = None,
) -> dict:
    try:
        signed = node.attestor.usage_report(rental_id, sequence, signer_set_version)
    except ReportConflict:
        node.metrics.reports_refused.labels("usage").inc()
        raise
    if signed.newly_signed:
        node.metrics.reports_signed.labels("usage").inc()
        node.metrics.signatures.labels("usage_report").inc()
    else:
        node.metrics.reports_served_stored.inc()
    return {
        "rental_id": rental_id,
        "sequence": signed.report.sequence,
        "chain_id": node.attestor.chain_id,
        "market_address": node.attestor.market_address,
        **_signed_out(signed),
    }


@router.get(
    "/v1/rentals/{rental_id}/faults",
    response_model=FaultReportsOut,
    summary="Signed fault reports of one page of fault ids (recorded before signing; a page already "
            "signed is served from storage)",
)
def get_fault_reports(
    rental_id: RentalIdPath,
    node: NodeDep,
    from_id: Annotated[int, Query(ge=0, lt=2**32, description="first fault id of the page")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_FAULTS_PER_PAGE, description="fault ids in the page")] = MAX_FAULTS_PER_PAGE,
    signer_set_version: VersionQuery = None,
) -> dict:
    held = node.attestor.contiguous_batches(rental_id)
    key = (rental_id, from_id, limit, signer_set_version)
    # The end challenge's fault (END_CHALLENGE_FAULT_ID) appears when its quorum decides, with no new batch.
    cached = node.fault_answers.get(key) if from_id + limit <= END_CHALLENGE_FAULT_ID else None
    if cached is not None and cached[0] == held:  # no batch since: the same answer, no metering
        node.metrics.reports_served_stored.inc()
        return cached[1]
    outcomes = node.attestor.fault_reports(rental_id, from_id, limit, signer_set_version)
    faults = []
    for outcome in outcomes:
        if outcome.signed is not None:
            if outcome.signed.newly_signed:
                node.metrics.reports_signed.labels("fault").inc()
                node.metrics.signatures.labels("fault_report").inc()
            faults.append({"fault_id": outcome.fault_id, "signed": _signed_out(outcome.signed)})
        else:
            node.metrics.reports_refused.labels("fault").inc()
            faults.append({"fault_id": outcome.fault_id, "refused": outcome.refused})
    answer = {"rental_id": rental_id, "sequence": held, "faults": faults}
    with node.fault_answers_lock:
        node.fault_answers[key] = (held, answer)
        node.fault_answers.move_to_end(key)
        while len(node.fault_answers) > FAULT_ANSWERS_KEPT:
            node.fault_answers.popitem(last=False)
    return answer


@router.post(
    "/v1/batch-signatures",
    response_model=BatchSignatureOut,
    summary="Sign a UsageReportBatch of reports this node itself recorded with identical digests",
    responses={404: {"description": "a report this node has not recorded"},
               409: {"description": "a digest differs from the report this node recorded"}},
)
def post_batch_signature(request_body: BatchSignatureIn, node: NodeDep) -> dict:
    items = [(ref.rental_id, ref.sequence, bytes.fromhex(ref.digest[2:])) for ref in request_body.reports]
    digest, signature, reports = node.attestor.sign_usage_batch(items)
    node.metrics.signatures.labels("usage_report_batch").inc()
    return {
        "digest": "0x" + digest.hex(),
        "signature": "0x" + signature.hex(),
        "signer": node.attestor.address,
        "reports": [report_fields(report) for report in reports],
    }
