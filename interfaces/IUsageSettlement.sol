// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {UsageReport} from "../contracts/types/DataTypes.sol";

/// @title IUsageSettlement
/// @notice Pays providers from escrow for quorum-attested cumulative usage.
/// @dev Payment of a report = cost(new cumulative) - paid so far, capped by the remaining
/// budget, where cost(available, energy) = floor(available * pricePerGpuHour / 3600) +
/// floor(energy * pricePerKwh / 3_600_000_000) (docs/protocol.md). Because `paid` equals the
/// cost of the last settled report (until the budget is exhausted, which ends the rental), this
/// is cost(new) - cost(old) and rounding favours the escrow. The protocol fee is
/// floor(paid * feeBps / 10000) on the cumulative amount: the provider is credited the increase
/// of paid - fee(paid) at each settlement, the treasury the fee at finalization.
/// A report settles only for an Active rental, or an Ended one within `settlementGrace` with
/// `periodEnd <= endedAt`. Its `sequence` must exceed the last settled one.
interface IUsageSettlement {
    /// @notice Emitted for each report settled by `settle`, and by `settleBatch` for the reports
    /// it settles after its fast pass (an Ended rental's final report).
    /// @param sequence The report's sequence, now the rental's last settled sequence.
    /// @param payment Amount moved out of the budget (provider credit plus fee).
    event UsageSettled(uint256 indexed rentalId, uint256 sequence, uint256 payment);
    /// @notice Emitted once by `settleBatch` for every report of an Active rental that it settles,
    /// instead of one UsageSettled each (one log per batch instead of one per report).
    /// @param settled Flattened triples, in report order: settled[3k] = rentalId, settled[3k+1] =
    /// sequence, settled[3k+2] = payment, with UsageSettled's meaning.
    event UsageBatchSettled(uint256[] settled);
    /// @notice Emitted by settleBatch for a report it skipped because its sequence is not above
    /// the last settled one or the rental cannot settle (already settled by another submitter).
    event UsageReportSkipped(uint256 indexed rentalId, uint256 sequence);

    /// @notice The report's sequence is not above the last settled `lastSequence`.
    error UsageSettlement_StaleSequence(uint256 rentalId, uint64 sequence, uint32 lastSequence);
    /// @notice The rental is not Active nor Ended within its settlement grace.
    error UsageSettlement_NotSettleable(uint256 rentalId, uint8 status);
    /// @notice An Ended rental's report covers time after the end.
    error UsageSettlement_PeriodAfterEnd(uint256 rentalId, uint64 periodEnd, uint32 endedAt);
    /// @notice Attested available GPU-seconds went down.
    error UsageSettlement_AvailableDecreased(uint256 rentalId, uint64 available, uint40 lastAvailable);
    /// @notice A value is outside what the rental stores (sequence > uint32, available > uint40,
    /// uptime > 10000).
    error UsageSettlement_ValueOutOfRange(uint256 rentalId);
    /// @notice settleBatch got no reports, or every report was skipped.
    error UsageSettlement_NothingSettled();

    /// @notice Settles one quorum-signed usage report. Callable by anyone; the payout goes to the
    /// rental's provider whoever submits.
    /// @param signatures Concatenated 65-byte signatures over `usageReportDigest(report)`, ascending
    /// signer order (see IOracleQuorum).
    function settle(UsageReport calldata report, bytes calldata signatures) external;

    /// @notice Settles many reports under one quorum signature over
    /// `UsageReportBatch(UsageReport[] reports)`. Reports that are stale or whose rental can no
    /// longer settle are skipped (event) so that overlapping batches do not block each other;
    /// reverts if nothing settles. Every report must name the current signer-set version.
    /// @dev Order of effects and events: first every report of an Active rental, in order, with
    /// one UsageBatchSettled listing them all (none if there are none); then, in report order,
    /// RentalEnded for rentals whose budget ran out and the remaining reports (Ended rentals'
    /// final reports: UsageSettled each; stale or unsettleable: UsageReportSkipped). A malformed
    /// value in a report that can still settle reverts the whole batch; a stale report, or one
    /// whose rental can no longer settle, is skipped before its values are read. A consumer reads both UsageBatchSettled and
    /// UsageSettled to see every report a batch settled.
    function settleBatch(UsageReport[] calldata reports, bytes calldata signatures) external;

    /// @notice EIP-712 digest of one usage report under this contract's domain.
    function usageReportDigest(UsageReport calldata report) external view returns (bytes32);

    /// @notice EIP-712 digest of `UsageReportBatch(UsageReport[] reports)`: the struct hash is
    /// keccak256(abi.encode(BATCH_TYPEHASH, keccak256(concat(hashStruct(report_i))))) with
    /// BATCH_TYPEHASH = keccak256("UsageReportBatch(UsageReport[] reports)UsageReport(...)").
    function usageBatchDigest(UsageReport[] calldata reports) external view returns (bytes32);

    /// @notice cost(available, energy) at the rental's snapshotted prices (before the budget cap).
    function costOf(uint256 rentalId, uint256 availableGpuSeconds, uint256 energyMillijoules)
        external
        view
        returns (uint256);
}
