// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

// Solidity's storage layout of the settlement slots of `Rental` (contracts/types/DataTypes.sol):
// the first member of a slot sits in its lowest bits. Every bit offset and mask of a rental that
// code outside the compiler uses is named here, once: UsageSettlement's assembly (the hot path,
// which cannot call functions) uses these constants, everything else uses `RentalSlot`.
// tests/foundry/unit/RentalSlot.t.sol fuzzes both directions against the compiler's own layout
// (a struct written by assignment read through RentalSlot, and words written by RentalSlot read
// as the struct), and that a settlement writes exactly `RentalSlot.settledWord0`.
// They are file-level constants because inline assembly can only name plain number constants.

/// @dev Slot 0 (read and written by every settlement), bit offset and mask of each field.
uint256 constant RENTAL_STATUS_OFFSET = 0;
uint256 constant RENTAL_STATUS_MASK = 0xff; // RentalStatus, uint8
uint256 constant RENTAL_SEQUENCE_OFFSET = 8;
uint256 constant RENTAL_SEQUENCE_MASK = 0xffffffff; // uint32
uint256 constant RENTAL_LAST_SETTLED_AT_OFFSET = 40;
uint256 constant RENTAL_LAST_SETTLED_AT_MASK = 0xffffffff; // uint32
uint256 constant RENTAL_AVAILABLE_OFFSET = 72;
uint256 constant RENTAL_AVAILABLE_MASK = 0xffffffffff; // uint40
uint256 constant RENTAL_POWER_LIMIT_OFFSET = 112;
uint256 constant RENTAL_POWER_LIMIT_MASK = 0xffff; // uint16
uint256 constant RENTAL_PAID_OFFSET = 128;
uint256 constant RENTAL_PAID_MASK = 0xffffffffffffffffffffffff; // uint96
/// @dev startedAt_ is the slot's top field: `word >> RENTAL_STARTED_AT_OFFSET` needs no mask.
uint256 constant RENTAL_STARTED_AT_OFFSET = 224;
uint256 constant RENTAL_STARTED_AT_MASK = 0xffffffff; // uint32
/// @dev Slot 0 bits a settlement keeps: powerLimitW_ and startedAt_.
/// Written with literals because assembly cannot use a constant defined from other constants;
/// RentalSlot.t.sol checks it equals the fields' masks shifted to their offsets.
uint256 constant RENTAL_SLOT0_SETTLEMENT_KEEP_MASK = (0xffff << 112) | (0xffffffff << 224);

/// @dev Slot 1 (read by every settlement).
uint256 constant RENTAL_PRICE_PER_GPU_HOUR_OFFSET = 0;
uint256 constant RENTAL_PRICE_MASK = 0xffffffffffffffffff; // uint72, both prices
uint256 constant RENTAL_PRICE_PER_KWH_OFFSET = 72;
uint256 constant RENTAL_BUDGET_OFFSET = 144;
uint256 constant RENTAL_BUDGET_MASK = 0xffffffffffffffffffffffff; // uint96
/// @dev gpuCount_ is slot 1's top field: `word >> RENTAL_GPU_COUNT_OFFSET` needs no mask.
uint256 constant RENTAL_GPU_COUNT_OFFSET = 240;
uint256 constant RENTAL_GPU_COUNT_MASK = 0xffff; // uint16

/// @dev The challenge record (slot 5: challengesPassed, challengesFailed), written by a
/// settlement whose report carries challenges, read at finalization.
uint256 constant RENTAL_CHALLENGES_SLOT = 5;
uint256 constant RENTAL_CHALLENGES_PASSED_OFFSET = 0;
uint256 constant RENTAL_CHALLENGES_FAILED_OFFSET = 32;
uint256 constant RENTAL_CHALLENGE_COUNT_MASK = 0xffffffff; // uint32, both counts

/// @title RentalSlot
/// @notice Reads and writes the packed words of a rental's settlement slots by field name.
/// @dev Pure word arithmetic with the constants above; no storage access of its own.
library RentalSlot {
    /// @notice Slot 0 as Solidity lays it out.
    function encodeSlot0(
        uint256 status_,
        uint256 sequence_,
        uint256 lastSettledAt_,
        uint256 availableGpuSeconds_,
        uint256 powerLimitW_,
        uint256 paid_,
        uint256 startedAt_
    ) internal pure returns (uint256 word) {
        word = (status_ & RENTAL_STATUS_MASK) << RENTAL_STATUS_OFFSET;
        word |= (sequence_ & RENTAL_SEQUENCE_MASK) << RENTAL_SEQUENCE_OFFSET;
        word |= (lastSettledAt_ & RENTAL_LAST_SETTLED_AT_MASK) << RENTAL_LAST_SETTLED_AT_OFFSET;
        word |= (availableGpuSeconds_ & RENTAL_AVAILABLE_MASK) << RENTAL_AVAILABLE_OFFSET;
        word |= (powerLimitW_ & RENTAL_POWER_LIMIT_MASK) << RENTAL_POWER_LIMIT_OFFSET;
        word |= (paid_ & RENTAL_PAID_MASK) << RENTAL_PAID_OFFSET;
        word |= (startedAt_ & RENTAL_STARTED_AT_MASK) << RENTAL_STARTED_AT_OFFSET;
    }

    /// @notice Slot 1 as Solidity lays it out.
    function encodeSlot1(uint256 pricePerGpuHour_, uint256 pricePerKwh_, uint256 budget_, uint256 gpuCount_)
        internal
        pure
        returns (uint256 word)
    {
        word = (pricePerGpuHour_ & RENTAL_PRICE_MASK) << RENTAL_PRICE_PER_GPU_HOUR_OFFSET;
        word |= (pricePerKwh_ & RENTAL_PRICE_MASK) << RENTAL_PRICE_PER_KWH_OFFSET;
        word |= (budget_ & RENTAL_BUDGET_MASK) << RENTAL_BUDGET_OFFSET;
        word |= (gpuCount_ & RENTAL_GPU_COUNT_MASK) << RENTAL_GPU_COUNT_OFFSET;
    }

    /// @notice The challenge record's word (slot RENTAL_CHALLENGES_SLOT).
    function encodeChallenges(uint256 passed_, uint256 failed_) internal pure returns (uint256) {
        return ((passed_ & RENTAL_CHALLENGE_COUNT_MASK) << RENTAL_CHALLENGES_PASSED_OFFSET)
            | ((failed_ & RENTAL_CHALLENGE_COUNT_MASK) << RENTAL_CHALLENGES_FAILED_OFFSET);
    }

    /// @notice The slot-0 word a settlement writes: `status_`, the report's sequence and
    /// available seconds, the settlement time and the new paid; powerLimitW and startedAt kept
    /// from `word0`. (UsageSettlement._applyRun composes the same word in assembly.)
    function settledWord0(
        uint256 word0,
        uint256 status_,
        uint256 sequence_,
        uint256 settledAt_,
        uint256 availableGpuSeconds_,
        uint256 newPaid_
    ) internal pure returns (uint256 word) {
        word = (word0 & RENTAL_SLOT0_SETTLEMENT_KEEP_MASK) | (status_ << RENTAL_STATUS_OFFSET);
        word |= sequence_ << RENTAL_SEQUENCE_OFFSET;
        word |= settledAt_ << RENTAL_LAST_SETTLED_AT_OFFSET;
        word |= availableGpuSeconds_ << RENTAL_AVAILABLE_OFFSET;
        word |= newPaid_ << RENTAL_PAID_OFFSET;
    }

    function status(uint256 word0) internal pure returns (uint256) {
        return (word0 >> RENTAL_STATUS_OFFSET) & RENTAL_STATUS_MASK;
    }

    function sequence(uint256 word0) internal pure returns (uint256) {
        return (word0 >> RENTAL_SEQUENCE_OFFSET) & RENTAL_SEQUENCE_MASK;
    }

    function lastSettledAt(uint256 word0) internal pure returns (uint256) {
        return (word0 >> RENTAL_LAST_SETTLED_AT_OFFSET) & RENTAL_LAST_SETTLED_AT_MASK;
    }

    function availableGpuSeconds(uint256 word0) internal pure returns (uint256) {
        return (word0 >> RENTAL_AVAILABLE_OFFSET) & RENTAL_AVAILABLE_MASK;
    }

    function powerLimitW(uint256 word0) internal pure returns (uint256) {
        return (word0 >> RENTAL_POWER_LIMIT_OFFSET) & RENTAL_POWER_LIMIT_MASK;
    }

    function paid(uint256 word0) internal pure returns (uint256) {
        return (word0 >> RENTAL_PAID_OFFSET) & RENTAL_PAID_MASK;
    }

    function startedAt(uint256 word0) internal pure returns (uint256) {
        return word0 >> RENTAL_STARTED_AT_OFFSET;
    }

    function pricePerGpuHour(uint256 word1) internal pure returns (uint256) {
        return (word1 >> RENTAL_PRICE_PER_GPU_HOUR_OFFSET) & RENTAL_PRICE_MASK;
    }

    function pricePerKwh(uint256 word1) internal pure returns (uint256) {
        return (word1 >> RENTAL_PRICE_PER_KWH_OFFSET) & RENTAL_PRICE_MASK;
    }

    function budget(uint256 word1) internal pure returns (uint256) {
        return (word1 >> RENTAL_BUDGET_OFFSET) & RENTAL_BUDGET_MASK;
    }

    function gpuCount(uint256 word1) internal pure returns (uint256) {
        return word1 >> RENTAL_GPU_COUNT_OFFSET;
    }

    function challengesPassed(uint256 word) internal pure returns (uint256) {
        return (word >> RENTAL_CHALLENGES_PASSED_OFFSET) & RENTAL_CHALLENGE_COUNT_MASK;
    }

    function challengesFailed(uint256 word) internal pure returns (uint256) {
        return (word >> RENTAL_CHALLENGES_FAILED_OFFSET) & RENTAL_CHALLENGE_COUNT_MASK;
    }
}
