// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Rental, RentalStatus, Reputation, UsageReport} from "../../../contracts/types/DataTypes.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";

/// @notice Issue 8: a provider's proof-of-GPU challenge record. Each settled report carries the
/// rental's cumulative challengesPassed / challengesFailed; the rental keeps the last settled
/// record (fast path, batch, and an Ended rental's final report alike), finalization adds it to
/// the provider's reputation, and failed challenges cut the rental's delivered fees.
contract ChallengeRecordTest is MarketFixture {
    function setUp() public {
        _deployMarket();
    }

    function _record(uint256 rentalId) internal view returns (uint256 passed, uint256 failed) {
        Rental memory r = _rental(rentalId);
        return (r.challengesPassed, r.challengesFailed);
    }

    function test_settle_recordsTheReportsChallengeCounts() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        _settle(rentalId, 1, 600, 0, 2, 1);
        (uint256 passed, uint256 failed) = _record(rentalId);
        assertEq(passed, 2, "passed");
        assertEq(failed, 1, "failed");
        _settle(rentalId, 2, 1200, 0, 5, 1);
        (passed, failed) = _record(rentalId);
        assertEq(passed, 5, "cumulative passed replaces the record");
        assertEq(failed, 1, "failed kept");
    }

    function test_settle_reportWithoutChallengesKeepsTheRecord() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        _settle(rentalId, 1, 600, 0, 3, 2);
        _settle(rentalId, 2, 1200, 0, 0, 0);
        (uint256 passed, uint256 failed) = _record(rentalId);
        assertEq(passed, 3, "passed kept");
        assertEq(failed, 2, "failed kept");
        assertEq(_rental(rentalId).sequence, 2, "the report itself settled");
    }

    function test_settleBatch_recordsEachRentalsCounts() public {
        uint256 offerId = _list(provider, 4, PRICE_PER_GPU_HOUR, 0);
        UsageReport[] memory reports = new UsageReport[](3);
        for (uint256 i = 0; i < 3; i++) {
            uint256 rentalId = _open(renter, offerId, 1, 100e6);
            vm.prank(provider);
            market.startRental(rentalId);
            reports[i].rentalId = rentalId;
        }
        vm.warp(block.timestamp + 600);
        for (uint256 i = 0; i < 3; i++) {
            reports[i] = _report(reports[i].rentalId, 1, 600, 0);
            reports[i].challengesPassed = uint32(i + 1);
            reports[i].challengesFailed = uint32(i);
        }
        vm.prank(keeper);
        market.settleBatch(reports, _signBatch(reports));
        // Rentals 1 and 2 failed challenges: recorded. Rental 0 only passed its one: an Active
        // rental's passed-only report leaves the record to the final report (gas, see
        // UsageSettlement), as test_settle_finalReportOfAnEndedRentalRecordsItsCounts shows.
        for (uint256 i = 0; i < 3; i++) {
            (uint256 passed, uint256 failed) = _record(reports[i].rentalId);
            assertEq(passed, i == 0 ? 0 : i + 1, "passed");
            assertEq(failed, i, "failed");
        }
    }

    function test_settle_activeReportWithPassedChallengesOnlyLeavesTheRecordToTheFinalReport() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        _settle(rentalId, 1, 600, 0, 2, 0);
        (uint256 passed, uint256 failed) = _record(rentalId);
        assertEq(passed + failed, 0, "not written while Active");
        vm.prank(renter);
        market.endRental(rentalId);
        _settle(rentalId, 2, 600, 0, 3, 0);
        (passed, failed) = _record(rentalId);
        assertEq(passed, 3, "the final report records the cumulative count");
        assertEq(failed, 0, "none failed");
    }

    function test_settle_finalReportOfAnEndedRentalRecordsItsCounts() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        _settle(rentalId, 1, 600, 0, 1, 0);
        vm.warp(block.timestamp + 600);
        vm.prank(renter);
        market.endRental(rentalId);
        assertEq(uint8(_rental(rentalId).status), uint8(RentalStatus.Ended), "ended");
        // The final report (through the precise path: the rental is Ended) with a late failure.
        _settle(rentalId, 2, 1200, 0, 1, 1);
        (uint256 passed, uint256 failed) = _record(rentalId);
        assertEq(passed, 1, "passed");
        assertEq(failed, 1, "the final report's failure is recorded");
    }

    function test_finalize_addsTheRecordToTheReputationAndWeighsDeliveredFees() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 1 hours);
        _settle(rentalId, 1, 3600, 0, 3, 1);
        vm.prank(renter);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        Reputation memory rep = market.reputationOf(provider);
        assertEq(rep.challengesPassed, 3, "passed");
        assertEq(rep.challengesFailed, 1, "failed");
        uint256 fee = uint256(PRICE_PER_GPU_HOUR) * FEE_BPS / 10_000;
        assertEq(uint256(rep.feesPaid), fee, "fee paid");
        // 100 % uptime, 3 of 4 challenges passed: 75 % of the fee delivered.
        assertEq(uint256(rep.deliveredFees), fee * 7500 / 10_000, "delivered fees cut by the failed share");
    }

    function test_finalize_abandonedRentalsChallengesStillCount() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        _settle(rentalId, 1, 0, 0, 0, 2); // challenges failed, nothing available
        vm.prank(provider);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        Reputation memory rep = market.reputationOf(provider);
        assertEq(rep.abandonedRentals, 1, "abandoned");
        assertEq(rep.challengesFailed, 2, "its failures are on the record");
    }

    /// @dev The provider's counters saturate at uint32 max instead of reverting: a record can
    /// never block a finalization.
    function test_finalize_challengeCountsSaturateInsteadOfReverting() public {
        uint256 offerId = _list(provider, 2, PRICE_PER_GPU_HOUR, 0);
        uint256[2] memory ids;
        for (uint256 i = 0; i < 2; i++) {
            ids[i] = _open(renter, offerId, 1, 100e6);
            vm.prank(provider);
            market.startRental(ids[i]);
        }
        vm.warp(block.timestamp + 600);
        for (uint256 i = 0; i < 2; i++) {
            _settle(ids[i], 1, 600, 0, type(uint32).max, type(uint32).max - 1);
            vm.prank(renter);
            market.endRental(ids[i]);
            _finalizeAfterGrace(ids[i]);
        }
        Reputation memory rep = market.reputationOf(provider);
        assertEq(rep.challengesPassed, type(uint32).max, "passed saturates");
        assertEq(rep.challengesFailed, type(uint32).max, "failed saturates");
        assertEq(rep.completedRentals, 2, "both finalized");
    }
}
