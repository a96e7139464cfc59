// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {UsageReport} from "./DataTypes.sol";

/// @notice An oracle operator's bond in the OperatorRegistry (one bond token per operator while
/// any bond exists).
/// @dev Written by bond / requestUnbond / completeUnbond (the operator) and proveEquivocation
/// (anyone, with proof); read by isBonded (the market's setSignerSet) and by sync (which pays
/// fee shares only to bonded members of the signer set). `rebateReports` counts the settled
/// reports the operator submitted through settleFor / settleBatchFor and has not yet claimed
/// (written there and by claimRebates); it shares slot 1 so that accruing a rebate costs one
/// slot write per call.
struct OperatorBond {
    // slot 0
    address token;
    uint96 active;
    // slot 1
    uint96 unbonding;
    uint32 unbondingReleaseAt;
    uint128 rebateReports;
}

/// @notice The market's link to its OperatorRegistry: where the operators' share of each protocol
/// fee is credited at finalization, and whose bonds the members of a new signer set must hold.
/// @dev One slot of GpuRentMarket (MarketStorage._operatorShare); written by setOperatorRegistry
/// (governance), read by setSignerSet (isBonded of each signer) and finalizeRental (fee split).
/// registry 0: no registry, no bond check, the whole fee to the treasury.
struct OperatorShare {
    address registry;
    uint16 feeShareBps;
}

/// @notice Governance parameters of the OperatorRegistry (each with an enforced range, see
/// IOperatorRegistry.setParams).
/// @param treasury Receives the part of a slashed bond that does not go to the prover.
/// @param slashBps Share of the operator's whole bond (active + unbonding) slashed per proven
/// equivocation (1..10000).
/// @param proverRewardBps Share of a slashed amount credited to the prover (0..5000).
/// @param unbondingDelay Seconds a bond stays slashable after requestUnbond (1 hour..365 days).
/// @param rebateToken Token the settlement gas rebate is paid in (0: no rebates).
/// @param rebatePerReport Rebate per report settled through settleFor / settleBatchFor, in
/// rebateToken units.
struct OperatorParams {
    // slot 0
    address treasury;
    uint16 slashBps;
    uint16 proverRewardBps;
    uint32 unbondingDelay;
    // slot 1
    address rebateToken;
    uint96 rebatePerReport;
}

/// @notice One signed usage report as evidence of equivocation (OperatorRegistry
/// proveEquivocationSigned): the report and a signature that covers it, either alone or inside a
/// UsageReportBatch (what nodes sign for settleBatch).
/// @param report The report.
/// @param batchReportHashes Empty: `signature` is over market.usageReportDigest(report). Else the
/// EIP-712 struct hashes (hashStruct(UsageReport)) of every report of the signed batch, in order;
/// `signature` is over market.usageBatchDigest of those reports.
/// @param batchIndex Position of `report` in the batch (ignored for a single-report signature).
/// @param signature 65-byte r||s||v signature.
struct SignedReport {
    UsageReport report;
    bytes32[] batchReportHashes;
    uint256 batchIndex;
    bytes signature;
}
