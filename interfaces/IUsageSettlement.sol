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
/// floor(paid * feeBps / 10000) on the cumulative amount. A settlement only moves the rental's
/// `paid`: the provider's earnings, paid - fee(paid), are credited to its withdrawable balance by
/// `claim` (anyone, any time) and at finalization (what is still unclaimed); the treasury gets
/// the fee at finalization.
/// A report settles only for an Active rental, or an Ended one within `settlementGrace` with
/// `periodEnd <= endedAt`. Its `sequence` must exceed the last settled one, and it must be
/// within the report bounds, with elapsed = max(0, periodEnd - startedAt):
/// periodEnd <= block.timestamp; availableGpuSeconds <= gpuCount * (elapsed + 1);
/// energyMillijoules <= gpuCount * (elapsed + 1) * powerLimitW * 1100 (the power limit plus the
/// nodes' 10 % margin; powerLimitW is the GPU model's, snapshotted at open). The extra second
/// per GPU covers periodEnd being the last sample's time floored to whole seconds.
interface IUsageSettlement {
    /// @notice Emitted for each report settled by `settle`, and by `settleBatch` for the reports
    /// it settles after its fast pass (an Ended rental's final report).
    /// @param sequence The report's sequence, now the rental's last settled sequence.
    /// @param payment Amount moved out of the budget (provider credit plus fee).
    event UsageSettled(uint256 indexed rentalId, uint256 sequence, uint256 payment);
    /// @notice Emitted once by `settleBatch` for every report of an Active rental that it settles,
    /// instead of one UsageSettled each (one log per batch instead of one per report).
    /// @param settled One packed word per settled report, in report order, with UsageSettled's
    /// meaning: settled[k] = rentalId << 128 | sequence << 96 | payment (payment < 2**96,
    /// sequence < 2**32).
    event UsageBatchSettled(uint256[] settled);
    /// @notice Emitted by settleBatch for a report it skipped because its sequence is not above
    /// the last settled one or the rental cannot settle (already settled by another submitter).
    event UsageReportSkipped(uint256 indexed rentalId, uint256 sequence);
    /// @notice Emitted when a rental's provider is credited earnings (by `claim` or at
    /// finalization).
    /// @param amount Added to the provider's withdrawable balance of the payment token.
    event EarningsClaimed(uint256 indexed rentalId, address indexed provider, uint256 amount);

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
    /// @notice settleBatch got more than `max` (256) reports.
    error UsageSettlement_BatchTooLarge(uint256 count, uint256 max);
    /// @notice The report's periodEnd is after the block time (settle; settleBatch skips it).
    error UsageSettlement_PeriodEndInFuture(uint256 rentalId, uint64 periodEnd, uint256 blockTime);
    /// @notice More available GPU-seconds than the rental's GPUs had since its start.
    error UsageSettlement_AvailableAboveBound(uint256 rentalId, uint256 available, uint256 maxAvailable);
    /// @notice More energy than the rental's GPUs can draw at their power limit since its start.
    error UsageSettlement_EnergyAboveBound(uint256 rentalId, uint256 energyMillijoules, uint256 maxEnergyMillijoules);

    /// @notice Settles one quorum-signed usage report. Callable by anyone; the payment accrues to
    /// the rental's provider whoever submits (see `claim`).
    /// @param signatures Concatenated 65-byte signatures over `usageReportDigest(report)`, ascending
    /// signer order (see IOracleQuorum).
    function settle(UsageReport calldata report, bytes calldata signatures) external;

    /// @notice Settles many reports under one quorum signature over
    /// `UsageReportBatch(UsageReport[] reports)`. Reports that are stale or whose rental can no
    /// longer settle are skipped (event) so that overlapping batches do not block each other;
    /// reverts if nothing settles. Every report must name the signer-set version of the batch's
    /// signers (the current one, or the previous one during the rotation overlap). At most 256
    /// reports (a worst-case batch then stays below a third of a 30 M-gas block).
    /// @dev Order of effects and events: first every report of an Active rental, in order, with
    /// one UsageBatchSettled listing them all (none if there are none); then, in report order,
    /// RentalEnded for rentals whose budget ran out and the remaining reports (Ended rentals'
    /// final reports: UsageSettled each; stale or unsettleable: UsageReportSkipped). A malformed
    /// value in a report that can still settle reverts the whole batch; a stale report, or one
    /// whose rental can no longer settle, or whose periodEnd is after the block time, is skipped
    /// before its values are read. A consumer reads both UsageBatchSettled and
    /// UsageSettled to see every report a batch settled.
    function settleBatch(UsageReport[] calldata reports, bytes calldata signatures) external;

    /// @notice Credits each rental's provider with its earnings not yet credited:
    /// paid - floor(paid * feeBps / 10000) - claimed. Anyone may call (the credit always goes to
    /// the rental's provider); rentals with nothing to credit are passed over. Emits
    /// EarningsClaimed per rental credited.
    /// @return total Sum credited (in each rental's payment token).
    function claim(uint256[] calldata rentalIds) external returns (uint256 total);

    /// @notice Most reports one settleBatch accepts (256); nodes split larger rounds.
    function MAX_BATCH_REPORTS() external pure returns (uint256);

    /// @notice What `claim` would credit for `rentalId` now.
    function claimable(uint256 rentalId) external view returns (uint256);

    /// @notice The rental's last settled sequence and when it settled (the start time before any
    /// settlement): one storage slot, for callers that check what a settlement did (e.g. the
    /// operator registry) without reading the whole rental.
    function lastSettlement(uint256 rentalId) external view returns (uint32 sequence, uint32 settledAt);

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
