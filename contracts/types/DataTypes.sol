// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @notice Lifecycle of a rental. Terminal states: `Cancelled`, `Finalized`.
/// @dev Transitions: None -> Open (openRental); Open -> Active (startRental);
/// Open -> Cancelled (cancelRental); Active -> Ended (endRental, closeSilentRental, budget
/// exhausted by a settlement); Ended -> Finalized (finalizeRental).
enum RentalStatus {
    None,
    Open,
    Active,
    Ended,
    Cancelled,
    Finalized
}

/// @notice Why a rental left `Active`.
enum EndReason {
    None,
    ByRenter,
    ByProvider,
    BudgetExhausted,
    MaxDuration,
    Silence
}

// Fault kinds of `FaultReport.kind` (also the bit index in `UsageReport.faultFlags`), as in
// docs/protocol.md: 1 = DOWNTIME, 2 = ENERGY_MISMATCH, 3 = COUNTER_PHYSICS, 4 = IDLE_POWER_BUSY.
// 0 is not a fault.
uint8 constant FAULT_KIND_MIN = 1;
uint8 constant FAULT_KIND_MAX = 4;

/// @notice Cumulative usage of one rental, signed by the oracle quorum (EIP-712).
/// @dev Field order and types are the EIP-712 type string of docs/protocol.md, byte for byte:
/// UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,
/// uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,
/// uint32 faultFlags,uint32 challengesPassed,uint32 challengesFailed,bytes32 telemetryHash,
/// uint32 signerSetVersion)
/// challengesPassed / challengesFailed are the cumulative counts of proof-of-GPU challenges of
/// the rental judged so far (failed includes missed); a failed period is already excluded from
/// the cumulative available seconds and energy by the nodes.
struct UsageReport {
    uint256 rentalId;
    uint64 sequence;
    uint64 periodEnd;
    uint64 availableGpuSeconds;
    uint64 busyGpuSeconds;
    uint128 energyMillijoules;
    uint128 carbonMilligrams;
    uint16 uptimeBps;
    uint32 faultFlags;
    uint32 challengesPassed;
    uint32 challengesFailed;
    bytes32 telemetryHash;
    uint32 signerSetVersion;
}

/// @notice A fault the oracle quorum attests for a rental; slashes the provider's stake once.
/// @dev EIP-712 type string: FaultReport(uint256 rentalId,uint32 faultId,uint8 kind,
/// uint64 observedAt,bytes32 evidenceHash,uint32 signerSetVersion)
struct FaultReport {
    uint256 rentalId;
    uint32 faultId;
    uint8 kind;
    uint64 observedAt;
    bytes32 evidenceHash;
    uint32 signerSetVersion;
}

/// @notice What a provider lists (input of createOffer/updateOffer, and part of `Offer`).
/// @param gpuModel GPU name as NVML reports it, UTF-8, left-aligned and zero-padded to 32 bytes
/// (e.g. bytes32("NVIDIA H100 80GB HBM3")).
/// @param gpuCount GPUs offered (a rental takes 1..gpuCount of them).
/// @param memoryMib Memory per GPU in MiB.
/// @param paymentToken Allowed payment ERC-20; fixed for the offer's life.
/// @param pricePerGpuHour Token units per GPU-hour of attested available time.
/// @param pricePerKwh Token units per kWh of attested energy (0 = energy not billed).
/// @param region Region id (e.g. bytes32("eu-north-1")), the key of the grid-intensity table.
/// @param gridIntensityGPerKwh Declared grid intensity, gCO2e per kWh.
/// @param maxDurationSeconds Longest rental the provider accepts (anyone may end after it).
/// @param minUptimeBps Uptime the provider promises (basis points); downtime beyond it is a fault.
/// @param agent Address whose key signs the provider's telemetry batches.
struct OfferTerms {
    bytes32 gpuModel;
    uint16 gpuCount;
    uint32 memoryMib;
    address paymentToken;
    uint72 pricePerGpuHour;
    uint72 pricePerKwh;
    bytes32 region;
    uint32 gridIntensityGPerKwh;
    uint32 maxDurationSeconds;
    uint16 minUptimeBps;
    address agent;
}

/// @notice A listed offer as stored.
/// @dev Slot 0 (provider) and slot 1 (paymentToken) are read by every settlement; when many
/// rentals of one offer settle in a batch they are warm. provider and paymentToken never change.
struct Offer {
    // slot 0
    address provider;
    uint16 gpuCount;
    uint16 minUptimeBps;
    uint32 version;
    bool active;
    // slot 1
    address paymentToken;
    uint72 pricePerKwh;
    // slot 2
    address agent;
    uint72 pricePerGpuHour;
    // slot 3
    uint32 memoryMib;
    uint32 maxDurationSeconds;
    uint32 gridIntensityGPerKwh;
    // slot 4
    bytes32 region;
    // slot 5
    bytes32 gpuModel;
}

/// @notice One rental as stored.
/// @dev Storage layout is chosen for settlement gas (slots 0 and 1 are fixed by the settlement
/// code's assembly, see UsageSettlement): slot 0 is the only slot a settlement writes (status,
/// last sequence, time of last settlement, cumulative attested seconds, the GPU model's power
/// limit snapshotted at open, the cumulative amount paid out of the budget, start time);
/// slot 1 is the only other rental slot it reads (prices snapshotted at open, so offer updates
/// never touch a running rental, the budget and the GPU count). A settlement reads neither the
/// offer nor any balance: the provider's earnings accrue in `paid` and are credited by `claim`
/// or at finalization. `paid` includes the protocol fee, credited to the treasury at
/// finalization. Uptime is not stored: it is availableGpuSeconds / (gpuCount x elapsed).
/// Slots >= 2 are the rental's other terms (not read by settlement).
struct Rental {
    // slot 0: read and written by every settlement
    RentalStatus status;
    uint32 sequence;
    uint32 lastSettledAt;
    uint40 availableGpuSeconds;
    uint16 powerLimitW;
    uint96 paid;
    uint32 startedAt;
    // slot 1: read by every settlement
    uint72 pricePerGpuHour;
    uint72 pricePerKwh;
    uint96 budget;
    uint16 gpuCount;
    // slot 2
    address renter;
    uint32 startDeadline;
    uint32 endedAt;
    EndReason endReason;
    uint16 feeBps;
    // slot 3
    address provider;
    uint96 claimed;
    // slot 4
    uint32 offerId;
    uint32 maxDurationSeconds;
}

/// @notice A GPU model of the on-chain table (set by governance).
/// @param powerLimitW Board power limit per GPU in watts (0 = not registered).
/// @param memoryMib Memory per GPU in MiB.
struct GpuModelSpec {
    uint16 powerLimitW;
    uint32 memoryMib;
}

/// @notice A provider's stake (one stake token per provider while any stake exists).
struct Stake {
    // slot 0
    address token;
    uint96 active;
    // slot 1
    uint96 unbonding;
    uint32 unbondingReleaseAt;
    uint32 listedGpus;
}

/// @notice Reputation counters, updated only from what settled on chain.
/// @param completedRentals Finalized rentals not closed for silence.
/// @param abandonedRentals Finalized rentals closed because the provider's reports stopped.
/// @param slashCount Fault reports slashed.
/// @param reportedRentals Finalized rentals with at least one settled report (uptime samples).
/// @param attestedGpuSeconds Sum of the last settled availableGpuSeconds of finalized rentals.
/// @param uptimeBpsSum Sum of the last settled uptimeBps of the reportedRentals.
struct Reputation {
    uint32 completedRentals;
    uint32 abandonedRentals;
    uint32 slashCount;
    uint32 reportedRentals;
    uint64 attestedGpuSeconds;
    uint64 uptimeBpsSum;
}

/// @notice Governance parameters.
/// @param treasury Receives protocol fees and the non-renter share of slashes.
/// @param protocolFeeBps Fee on each payment, snapshotted into a rental at open (max 1000).
/// @param renterSlashShareBps Share of a slash credited to the renter (rest to the treasury).
/// @param slashBps Slash per fault as basis points of (minStakePerGpu x rental gpuCount).
/// @param startTimeout Seconds a provider has to start an opened rental.
/// @param silenceTimeout Seconds without a settlement after which anyone may close a rental.
/// @param settlementGrace Seconds after a rental ends during which its final report can settle.
/// @param unbondingDelay Seconds unstaked tokens stay slashable before they can be withdrawn.
struct MarketParams {
    address treasury;
    uint16 protocolFeeBps;
    uint16 renterSlashShareBps;
    uint16 slashBps;
    uint32 startTimeout;
    uint32 silenceTimeout;
    uint32 settlementGrace;
    uint32 unbondingDelay;
}
