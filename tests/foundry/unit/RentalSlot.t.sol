// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Rental, RentalStatus, UsageReport} from "../../../contracts/types/DataTypes.sol";
import {
    RentalSlot,
    RENTAL_STATUS_OFFSET,
    RENTAL_STATUS_MASK,
    RENTAL_SEQUENCE_MASK,
    RENTAL_AVAILABLE_MASK,
    RENTAL_POWER_LIMIT_OFFSET,
    RENTAL_POWER_LIMIT_MASK,
    RENTAL_STARTED_AT_OFFSET,
    RENTAL_STARTED_AT_MASK,
    RENTAL_SLOT0_SETTLEMENT_KEEP_MASK,
    RENTAL_PRICE_PER_GPU_HOUR_OFFSET,
    RENTAL_GPU_COUNT_OFFSET,
    RENTAL_GPU_COUNT_MASK,
    RENTAL_CHALLENGES_SLOT
} from "../../../contracts/libraries/RentalSlot.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";

/// @notice Holds one Rental the way the market does and exposes its raw slots.
contract RentalSlotHarness {
    Rental internal _rental;

    function put(Rental calldata rental) external {
        _rental = rental;
    }

    function get() external view returns (Rental memory) {
        return _rental;
    }

    function word(uint256 index) external view returns (uint256 value) {
        assembly ("memory-safe") {
            value := sload(add(_rental.slot, index))
        }
    }

    function putWord(uint256 index, uint256 value) external {
        assembly ("memory-safe") {
            sstore(add(_rental.slot, index), value)
        }
    }
}

/// @notice RentalSlot (the named offsets UsageSettlement's assembly packs rentals with) against
/// Solidity's own layout of `Rental`, in both directions, and against what a settlement writes.
contract RentalSlotTest is MarketFixture {
    RentalSlotHarness internal harness;

    function setUp() public {
        harness = new RentalSlotHarness();
        _deployMarket();
    }

    function _fields(Rental memory r) internal pure returns (uint256 word0, uint256 word1, uint256 challenges) {
        word0 = RentalSlot.encodeSlot0(
            uint8(r.status), r.sequence, r.lastSettledAt, r.availableGpuSeconds, r.powerLimitW, r.paid, r.startedAt
        );
        word1 = RentalSlot.encodeSlot1(r.pricePerGpuHour, r.pricePerKwh, r.budget, r.gpuCount);
        challenges = RentalSlot.encodeChallenges(r.challengesPassed, r.challengesFailed);
    }

    /// @dev Rental's fields with its enums as uint8, so that the fuzzer's values decode.
    struct RentalFields {
        uint8 status;
        uint32 sequence;
        uint32 lastSettledAt;
        uint40 availableGpuSeconds;
        uint16 powerLimitW;
        uint96 paid;
        uint32 startedAt;
        uint72 pricePerGpuHour;
        uint72 pricePerKwh;
        uint96 budget;
        uint16 gpuCount;
        address renter;
        uint32 startDeadline;
        uint32 endedAt;
        uint8 endReason;
        uint16 feeBps;
        address provider;
        uint96 claimed;
        uint32 offerId;
        uint32 maxDurationSeconds;
        uint96 collateral;
        uint96 slashed;
        uint32 challengesPassed;
        uint32 challengesFailed;
    }

    function _bounded(RentalFields memory f) internal pure returns (Rental memory r) {
        f.status %= 6;
        f.endReason %= 6;
        assembly ("memory-safe") {
            r := f // same static layout in memory, one word per field
        }
    }

    function testFuzz_structWrittenByAssignment_readsBackThroughRentalSlot(RentalFields memory f) public {
        Rental memory r = _bounded(f);
        harness.put(r);
        uint256 word0 = harness.word(0);
        uint256 word1 = harness.word(1);
        uint256 challenges = harness.word(RENTAL_CHALLENGES_SLOT);
        assertEq(RentalSlot.status(word0), uint8(r.status), "status");
        assertEq(RentalSlot.sequence(word0), r.sequence, "sequence");
        assertEq(RentalSlot.lastSettledAt(word0), r.lastSettledAt, "lastSettledAt");
        assertEq(RentalSlot.availableGpuSeconds(word0), r.availableGpuSeconds, "availableGpuSeconds");
        assertEq(RentalSlot.powerLimitW(word0), r.powerLimitW, "powerLimitW");
        assertEq(RentalSlot.paid(word0), r.paid, "paid");
        assertEq(RentalSlot.startedAt(word0), r.startedAt, "startedAt");
        assertEq(RentalSlot.pricePerGpuHour(word1), r.pricePerGpuHour, "pricePerGpuHour");
        assertEq(RentalSlot.pricePerKwh(word1), r.pricePerKwh, "pricePerKwh");
        assertEq(RentalSlot.budget(word1), r.budget, "budget");
        assertEq(RentalSlot.gpuCount(word1), r.gpuCount, "gpuCount");
        assertEq(RentalSlot.challengesPassed(challenges), r.challengesPassed, "challengesPassed");
        assertEq(RentalSlot.challengesFailed(challenges), r.challengesFailed, "challengesFailed");
        // The encoders give the very words Solidity stored (no stray or missing bit).
        (uint256 e0, uint256 e1, uint256 ec) = _fields(r);
        assertEq(e0, word0, "slot 0 word");
        assertEq(e1, word1, "slot 1 word");
        assertEq(ec, challenges, "challenge word");
    }

    function testFuzz_wordsWrittenByRentalSlot_readBackAsTheStruct(RentalFields memory f) public {
        Rental memory r = _bounded(f);
        (uint256 word0, uint256 word1, uint256 challenges) = _fields(r);
        harness.putWord(0, word0);
        harness.putWord(1, word1);
        harness.putWord(RENTAL_CHALLENGES_SLOT, challenges);
        Rental memory back = harness.get();
        assertEq(uint8(back.status), uint8(r.status), "status");
        assertEq(back.sequence, r.sequence, "sequence");
        assertEq(back.lastSettledAt, r.lastSettledAt, "lastSettledAt");
        assertEq(back.availableGpuSeconds, r.availableGpuSeconds, "availableGpuSeconds");
        assertEq(back.powerLimitW, r.powerLimitW, "powerLimitW");
        assertEq(back.paid, r.paid, "paid");
        assertEq(back.startedAt, r.startedAt, "startedAt");
        assertEq(back.pricePerGpuHour, r.pricePerGpuHour, "pricePerGpuHour");
        assertEq(back.pricePerKwh, r.pricePerKwh, "pricePerKwh");
        assertEq(back.budget, r.budget, "budget");
        assertEq(back.gpuCount, r.gpuCount, "gpuCount");
        assertEq(back.challengesPassed, r.challengesPassed, "challengesPassed");
        assertEq(back.challengesFailed, r.challengesFailed, "challengesFailed");
    }

    function testFuzz_settledWord0_changesOnlyTheSettledFields(
        RentalFields memory f,
        uint8 status,
        uint32 sequence,
        uint32 settledAt,
        uint40 available,
        uint96 newPaid
    ) public pure {
        Rental memory r = _bounded(f);
        status = status % 6;
        (uint256 word0,,) = _fields(r);
        uint256 settled = RentalSlot.settledWord0(word0, status, sequence, settledAt, available, newPaid);
        assertEq(RentalSlot.status(settled), status, "status");
        assertEq(RentalSlot.sequence(settled), sequence, "sequence");
        assertEq(RentalSlot.lastSettledAt(settled), settledAt, "lastSettledAt");
        assertEq(RentalSlot.availableGpuSeconds(settled), available, "available");
        assertEq(RentalSlot.paid(settled), newPaid, "paid");
        assertEq(RentalSlot.powerLimitW(settled), r.powerLimitW, "powerLimitW kept");
        assertEq(RentalSlot.startedAt(settled), r.startedAt, "startedAt kept");
    }

    /// @dev The constants the assembly relies on beyond the encoders: the keep mask is exactly
    /// powerLimitW and startedAt; status and pricePerGpuHour are at offset 0 (read by mask only);
    /// startedAt and gpuCount are their slots' top fields (read by shift only).
    function test_constants_theAssemblysShortcutsHold() public pure {
        assertEq(
            RENTAL_SLOT0_SETTLEMENT_KEEP_MASK,
            (RENTAL_POWER_LIMIT_MASK << RENTAL_POWER_LIMIT_OFFSET) | (RENTAL_STARTED_AT_MASK << RENTAL_STARTED_AT_OFFSET),
            "keep mask"
        );
        assertEq(RENTAL_STATUS_OFFSET, 0, "status at bit 0");
        assertEq(RENTAL_PRICE_PER_GPU_HOUR_OFFSET, 0, "pricePerGpuHour at bit 0");
        assertEq(RENTAL_STARTED_AT_OFFSET + 32, 256, "startedAt on top");
        assertEq(RENTAL_GPU_COUNT_OFFSET + 16, 256, "gpuCount on top");
        assertEq(RENTAL_GPU_COUNT_MASK, type(uint16).max, "gpuCount width");
        assertEq(RENTAL_STATUS_MASK, type(uint8).max, "status width");
        assertEq(RENTAL_SEQUENCE_MASK, type(uint32).max, "sequence width");
        assertEq(RENTAL_AVAILABLE_MASK, type(uint40).max, "available width");
    }

    /// @dev What the market's assembly writes is RentalSlot.settledWord0 of what was there, and
    /// the report's challenge record: read back through Solidity's getRental.
    function testFuzz_settlement_writesRentalSlotsSettledWord(
        uint40 available,
        uint32 passed,
        uint32 failed,
        uint32 gapSeconds
    ) public {
        uint256 rentalId = _activeRental(2, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        available = uint40(bound(available, 1, 2 * 7 days));
        vm.warp(block.timestamp + bound(gapSeconds, 0, 1 days));
        _warpToCover(rentalId, available, 0);
        (uint256 word0Before,,) = _fields(_rental(rentalId));

        UsageReport memory report = _report(rentalId, 1, uint64(available), 0);
        report.challengesPassed = passed;
        report.challengesFailed = failed;
        vm.prank(keeper);
        market.settle(report, _signUsage(report));
        _checkSettledWord(rentalId, word0Before, available, passed, failed);
    }

    function _checkSettledWord(uint256 rentalId, uint256 word0Before, uint256 available, uint32 passed, uint32 failed)
        internal
        view
    {
        Rental memory afterwards = _rental(rentalId);
        (uint256 word0After,, uint256 challengesAfter) = _fields(afterwards);
        uint256 expected = RentalSlot.settledWord0(
            word0Before, uint8(afterwards.status), 1, block.timestamp, available, afterwards.paid
        );
        assertEq(word0After, expected, "slot 0 is settledWord0 of the slot before");
        uint256 cost = _specCost(available, 0, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
        assertEq(afterwards.paid, cost < afterwards.budget ? cost : afterwards.budget, "paid");
        // The record is kept by a report with a failed challenge, or one that ends the rental
        // (its budget ran out); an Active rental's passed-only report leaves it (UsageSettlement).
        bool recorded = failed != 0 || afterwards.status == RentalStatus.Ended;
        assertEq(challengesAfter, recorded ? RentalSlot.encodeChallenges(passed, failed) : 0, "challenge record");
    }
}
