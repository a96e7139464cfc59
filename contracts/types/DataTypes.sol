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
// docs/protocol.md: 1 = DOWNTIME (beyond the offer's SLA), 2 = ENERGY_MISMATCH,
// 3 = COUNTER_PHYSICS, 4 = IDLE_POWER_BUSY (a usage flag of the renter's workload, never
// slashed), 5 = CHALLENGE_FAILED, 6 = GPU_MISSING, 7 = FOREIGN_PROCESS. 0 is not a fault.
uint8 constant FAULT_KIND_MIN = 1;
uint8 constant FAULT_KIND_MAX = 7;
uint8 constant FAULT_KIND_IDLE_POWER_BUSY = 4;

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
/// Must be registered in the market's GPU model table (setGpuModel), which gives the power
/// limit and the memory per GPU (an offer does not state them).
/// @param gpuCount GPUs offered (a rental takes 1..gpuCount of them).
/// @param paymentToken Allowed payment ERC-20; fixed for the offer's life.
/// @param pricePerGpuHour Token units per GPU-hour of attested available time.
/// @param pricePerKwh Token units per kWh of attested energy (0 = energy not billed).
/// @param region Region id (e.g. bytes32("eu-north-1")), the key of the grid-intensity table.
/// @param gridIntensityGPerKwh Declared grid intensity, gCO2e per kWh.
/// @param maxDurationSeconds Longest rental the provider accepts (anyone may end after it);
/// a rental's is the lesser of this and the market's `maxRentalDuration`.
/// @param minUptimeBps SLA: uptime the provider promises per slash window (basis points);
/// downtime beyond it is a DOWNTIME fault.
/// @param maxGapSeconds SLA: the longest gap in service the provider promises never to exceed
/// (0 = no gap promise); a longer gap is a DOWNTIME fault. Shorter gaps are unpaid time only.
/// @param agent Address whose key signs the provider's telemetry batches.
struct OfferTerms {
    bytes32 gpuModel;
    uint16 gpuCount;
    address paymentToken;
    uint72 pricePerGpuHour;
    uint72 pricePerKwh;
    bytes32 region;
    uint32 gridIntensityGPerKwh;
    uint32 maxDurationSeconds;
    uint16 minUptimeBps;
    uint32 maxGapSeconds;
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
    uint32 memoryMib; // from the GPU model table when the offer was listed or updated
    uint32 maxDurationSeconds;
    uint32 gridIntensityGPerKwh;
    uint32 maxGapSeconds;
    // slot 4
    bytes32 region;
    // slot 5
    bytes32 gpuModel;
}

/// @dev Offer's storage layout for PackedView (slot, bit offset, bit width per field).
bytes constant OFFER_LAYOUT = hex"0000a0_00a010_00b010_00c020_00e008_0100a0_01a048_0200a0_02a048_030020_032020_034020"
    hex"036020_040000_050000";

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
    // slot 4 (economics: written at open and start, by slash and at finalization)
    uint32 offerId;
    uint32 maxDurationSeconds; // min(offer's, params.maxRentalDuration) at open
    /// Stake locked for this rental at start: collateralPerGpu x gpuCount (0 before start).
    uint96 collateral;
    /// Taken from the provider's stake for this rental's faults (<= collateral). Held by the
    /// contract until finalization, then split between the renter (capped) and the treasury.
    uint96 slashed;
    // slot 5: the challenge record, the cumulative counts of the last settled report that
    // carried any (UsageReport.challengesPassed / challengesFailed); written by settlement only
    // for such reports and only when they change, added to the reputation at finalization.
    uint32 challengesPassed;
    uint32 challengesFailed;
}

/// @notice The terms a rental depends on, fixed when it opens (docs/protocol.md "Rental
/// terms"). Nodes read only these, never the live offer or parameters; governance and offer
/// updates never change a running rental.
/// @param agent Key that signs the provider's telemetry batches for this rental.
/// @param gpuCount GPUs rented.
/// @param powerLimitW Board power limit per GPU, from the GPU model table.
/// @param memoryMib Memory per GPU in MiB, from the GPU model table.
/// @param minUptimeBps SLA uptime per slash window (basis points).
/// @param feeBps Protocol fee on the rental's payments (basis points).
/// @param gpuModel The offer's GPU model (NVML name as bytes32).
/// @param region The offer's region id.
/// @param workloadHash Commitment to the renter's workload spec (0 = none; issue 10).
/// @param stakeToken The provider's stake token (slashes are in it).
/// @param collateralPerGpu Stake locked per rented GPU at start (the stake token's minimum).
/// @param gridIntensityGPerKwh The offer's declared grid intensity.
/// @param maxGapSeconds SLA: longest tolerated gap in service (0 = none promised).
/// @param maxDurationSeconds Longest duration of this rental.
/// @param silenceTimeout Seconds without a settlement after which anyone may close it.
/// @param settlementGrace Seconds after the end during which the final report can settle and
/// faults can still slash; finalization waits for it.
/// @param slashWindowSeconds Each fault kind slashes at most once per window of this length,
/// counted from startedAt.
/// @param slashBps Slash per fault, basis points of the rental's collateral.
/// @param renterSlashShareBps Renter's share of slashes (paid at finalization, capped by what
/// the rental cost the renter).
struct RentalTerms {
    // slot 0
    address agent;
    uint16 gpuCount;
    uint16 powerLimitW;
    uint32 memoryMib;
    uint16 minUptimeBps;
    uint16 feeBps;
    // slot 1
    bytes32 gpuModel;
    // slot 2
    bytes32 region;
    // slot 3
    bytes32 workloadHash;
    // slot 4
    address stakeToken;
    uint96 collateralPerGpu;
    // slot 5
    uint32 gridIntensityGPerKwh;
    uint32 maxGapSeconds;
    uint32 maxDurationSeconds;
    uint32 silenceTimeout;
    uint32 settlementGrace;
    uint32 slashWindowSeconds;
    uint16 slashBps;
    uint16 renterSlashShareBps;
}

/// @dev RentalTerms's storage layout for PackedView (slot, bit offset, bit width per field).
bytes constant RENTAL_TERMS_LAYOUT = hex"0000a0_00a010_00b010_00c020_00e010_00f010_010000_020000_030000_0400a0_04a060"
    hex"050020_052020_054020_056020_058020_05a020_05c010_05d010";

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
    /// Stake backing started, unfinalized rentals (sum of their collateral - slashed); never
    /// above `active`, cannot be unstaked.
    uint96 locked;
}

/// @dev Stake's storage layout for PackedView (slot, bit offset, bit width per field).
bytes constant STAKE_LAYOUT = hex"0000a0_00a060_010060_016020_018020_01a060";

/// @notice Reputation counters, updated only from what settled on chain (docs/economics.md).
/// @param completedRentals Finalized rentals with attested usage that were not abandoned.
/// @param abandonedRentals Finalized rentals closed for silence, or ended by the provider or
/// at max duration with no attested usage.
/// @param slashCount Fault reports slashed.
/// @param attestedGpuSeconds Sum of the attested available GPU-seconds of finalized rentals.
/// @param feesPaid Protocol fees paid by the provider's finalized rentals (payment-token units).
/// @param deliveredFees Sum over completed rentals of fee x attested uptime (uptime in
/// GPU-seconds available / GPU-seconds rented).
/// @param abandonedCollateral Sum of the collateral of abandoned rentals.
/// @param slashedAmount Sum of the amounts slashed (stake-token units).
/// @param challengesPassed Proof-of-GPU challenges passed, summed over finalized rentals (each
/// rental's count from its last settled report that carried challenges; saturates at 2**32 - 1).
/// @param challengesFailed Challenges failed or missed, likewise.
struct Reputation {
    // slot 0
    uint32 completedRentals;
    uint32 abandonedRentals;
    uint32 slashCount;
    uint64 attestedGpuSeconds;
    uint32 challengesPassed;
    uint32 challengesFailed;
    // slot 1
    uint128 feesPaid;
    uint128 deliveredFees;
    // slot 2
    uint128 abandonedCollateral;
    uint128 slashedAmount;
}

/// @dev Reputation's storage layout for PackedView (slot, bit offset, bit width per field).
bytes constant REPUTATION_LAYOUT = hex"000020_002020_004020_006040_00a020_00c020_010080_018080_020080_028080";

/// @notice Governance parameters.
/// @param treasury Receives protocol fees and the non-renter share of slashes.
/// @param protocolFeeBps Fee on each payment, snapshotted into a rental at open (max 1000).
/// @param renterSlashShareBps Share of a slash credited to the renter (rest to the treasury).
/// @param slashBps Slash per fault as basis points of the rental's collateral (<= 5000).
/// @param startTimeout Seconds a provider has to start an opened rental (60 s .. 7 days).
/// @param silenceTimeout Seconds without a settlement after which anyone may close a rental
/// (60 s .. 7 days).
/// @param settlementGrace Seconds after a rental ends during which its final report can settle
/// and faults can slash (60 s .. 7 days).
/// @param unbondingDelay Seconds unstaked tokens wait before they can be withdrawn
/// (> maxRentalDuration + settlementGrace, <= 400 days).
/// @param maxRentalDuration Longest rental any offer can have (1 hour .. 180 days).
/// @param slashWindowSeconds Each fault kind slashes a rental at most once per window
/// (60 s .. 1 day).
/// @param reputationPrior The prior of the reputation score, in payment-token units of fees
/// (1 .. 2**96 - 1; docs/economics.md).
/// Rentals snapshot every parameter they depend on at open (RentalTerms); only the treasury,
/// the prior and the parameters of rentals not yet opened change with setParams.
struct MarketParams {
    address treasury;
    uint16 protocolFeeBps;
    uint16 renterSlashShareBps;
    uint16 slashBps;
    uint32 startTimeout;
    uint32 silenceTimeout;
    uint32 settlementGrace;
    uint32 unbondingDelay;
    uint32 maxRentalDuration;
    uint32 slashWindowSeconds;
    uint96 reputationPrior;
}
