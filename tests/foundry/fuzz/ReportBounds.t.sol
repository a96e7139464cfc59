// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Rental, RentalStatus, UsageReport} from "../../../contracts/types/DataTypes.sol";
import {IUsageSettlement} from "../../../interfaces/IUsageSettlement.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";

/// @notice Reports of an Active rental are bounded on chain (issue 7, item 7): periodEnd not
/// after the block time, available GPU-seconds at most gpuCount x (elapsed + 1), energy at most
/// that x the snapshotted power limit x 1.1 (docs/protocol.md "Report bounds"); a batch has at
/// most 256 reports and 256 first settlements fit far inside a 30 M-gas block.
contract ReportBoundsTest is MarketFixture {
    uint256 internal constant YEAR = 365 days;
    /// @dev The fixture registers its model (NVIDIA H100 80GB HBM3) at 700 W.
    uint256 internal constant POWER_LIMIT_W = 700;

    function setUp() public {
        _deployMarket();
    }

    function _signedReport(uint256 rentalId, uint64 periodEnd, uint64 available, uint128 energy)
        internal
        view
        returns (UsageReport memory report, bytes memory signatures)
    {
        report = _report(rentalId, 1, available, energy);
        report.periodEnd = periodEnd;
        signatures = _signUsage(report);
    }

    /// @dev The finding of issue 7 item 7: ten seconds after start, a report with periodEnd a
    /// year ahead and a year of GPU-seconds on a 1-GPU rental drained its budget. Now it reverts.
    function test_activeRental_reportWithPeriodEndAYearAhead_reverts() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        vm.warp(block.timestamp + 10);
        uint64 periodEnd = uint64(block.timestamp + YEAR);
        (UsageReport memory report, bytes memory signatures) = _signedReport(rentalId, periodEnd, uint64(YEAR), 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageSettlement.UsageSettlement_PeriodEndInFuture.selector, rentalId, periodEnd, block.timestamp
            )
        );
        market.settle(report, signatures);
        assertEq(_rental(rentalId).paid, 0, "nothing paid");
    }

    function test_activeRental_reportWithAYearOfGpuSeconds10sAfterStart_reverts() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        vm.warp(block.timestamp + 10);
        (UsageReport memory report, bytes memory signatures) =
            _signedReport(rentalId, uint64(block.timestamp), uint64(YEAR), 0);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageSettlement.UsageSettlement_AvailableAboveBound.selector, rentalId, YEAR, 11)
        );
        market.settle(report, signatures);
        assertEq(_rental(rentalId).paid, 0, "nothing paid");
    }

    function test_activeRental_reportWithEnergyAboveThePowerLimit_reverts() public {
        uint256 rentalId = _activeRental(2, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        vm.warp(block.timestamp + 99);
        uint256 maxEnergy = 2 * 100 * POWER_LIMIT_W * 1100;
        (UsageReport memory report, bytes memory signatures) =
            _signedReport(rentalId, uint64(block.timestamp), 200, uint128(maxEnergy + 1));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageSettlement.UsageSettlement_EnergyAboveBound.selector, rentalId, maxEnergy + 1, maxEnergy
            )
        );
        market.settle(report, signatures);
    }

    /// @dev Exactly at each bound a report settles; one unit above, it reverts (single) whatever
    /// the GPU count and elapsed time, and the batch fast path agrees with the precise checks.
    function testFuzz_bounds_settleUpToTheBoundAndRevertAbove(uint16 gpuCount, uint32 elapsed, bool energySide, bool batch)
        public
    {
        gpuCount = uint16(bound(gpuCount, 1, 64));
        elapsed = uint32(bound(elapsed, 0, 400 days));
        uint256 rentalId = _activeRental(gpuCount, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1e15);
        vm.warp(block.timestamp + elapsed);
        uint256 maxAvailable = uint256(gpuCount) * (uint256(elapsed) + 1);
        uint256 maxEnergy = maxAvailable * POWER_LIMIT_W * 1100;
        uint64 available = uint64(energySide ? maxAvailable : maxAvailable + 1);
        uint128 energy = uint128(energySide ? maxEnergy + 1 : maxEnergy);
        (UsageReport memory over, bytes memory overSignatures) =
            _signedReport(rentalId, uint64(block.timestamp), available, energy);
        vm.expectRevert(
            energySide
                ? abi.encodeWithSelector(
                    IUsageSettlement.UsageSettlement_EnergyAboveBound.selector, rentalId, maxEnergy + 1, maxEnergy
                )
                : abi.encodeWithSelector(
                    IUsageSettlement.UsageSettlement_AvailableAboveBound.selector, rentalId, maxAvailable + 1, maxAvailable
                )
        );
        if (batch) {
            UsageReport[] memory reports = new UsageReport[](1);
            reports[0] = over;
            market.settleBatch(reports, _signBatch(reports));
        } else {
            market.settle(over, overSignatures);
        }
        (UsageReport memory atBound, bytes memory signatures) =
            _signedReport(rentalId, uint64(block.timestamp), uint64(maxAvailable), uint128(maxEnergy));
        if (batch) {
            UsageReport[] memory reports = new UsageReport[](1);
            reports[0] = atBound;
            market.settleBatch(reports, _signBatch(reports));
        } else {
            market.settle(atBound, signatures);
        }
        assertEq(_rental(rentalId).availableGpuSeconds, maxAvailable, "settled at the bound");
    }

    /// @dev A report ending before the rental started may attest at most one second per GPU.
    function test_reportEndingBeforeStart_boundedToOneSecondPerGpu() public {
        uint256 rentalId = _activeRental(3, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        uint64 startedAt = _rental(rentalId).startedAt;
        vm.warp(block.timestamp + 1 hours);
        (UsageReport memory report, bytes memory signatures) = _signedReport(rentalId, startedAt - 100, 4, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageSettlement.UsageSettlement_AvailableAboveBound.selector, rentalId, 4, 3)
        );
        market.settle(report, signatures);
    }

    /// @dev A batch skips (does not revert on) a report whose periodEnd is ahead of the block
    /// time, e.g. a node clock running ahead, and settles the others.
    function test_settleBatch_skipsAReportAheadOfTheBlockTime() public {
        uint256 offerId = _list(provider, 2, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
        uint256 a = _open(renter, offerId, 1, 100e6);
        uint256 b = _open(renter, offerId, 1, 100e6);
        vm.startPrank(provider);
        market.startRental(a);
        market.startRental(b);
        vm.stopPrank();
        vm.warp(block.timestamp + 600);
        UsageReport[] memory reports = new UsageReport[](2);
        reports[0] = _report(a, 1, 600, 0);
        reports[1] = _report(b, 1, 600, 0);
        reports[1].periodEnd = uint64(block.timestamp + 5);
        vm.expectEmit(address(market));
        emit IUsageSettlement.UsageReportSkipped(b, 1);
        market.settleBatch(reports, _signBatch(reports));
        assertEq(_rental(a).sequence, 1, "in-time report settled");
        assertEq(_rental(b).sequence, 0, "future report skipped");
    }

    function test_settleBatch_above256Reports_reverts() public {
        UsageReport[] memory reports = new UsageReport[](257);
        vm.expectRevert(abi.encodeWithSelector(IUsageSettlement.UsageSettlement_BatchTooLarge.selector, 257, 256));
        market.settleBatch(reports, "");
    }

    /// @dev The cap's reason, measured: 256 first settlements of 256 rentals of 256 different
    /// providers (the most expensive fast-path mix) use far less than a 30 M-gas block.
    function test_settleBatch_256FirstSettlementsOfDistinctProviders_fitA30MGasBlock() public {
        UsageReport[] memory reports = new UsageReport[](256);
        for (uint256 i = 0; i < 256; i++) {
            address p = address(uint160(0x10000 + i));
            uint256 offerId = _list(p, 1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
            uint256 rentalId = _open(renter, offerId, 1, 100e6);
            vm.prank(p);
            market.startRental(rentalId);
            reports[i].rentalId = rentalId;
        }
        vm.warp(block.timestamp + 600);
        for (uint256 i = 0; i < 256; i++) {
            reports[i] = _report(reports[i].rentalId, 1, 600, 600 * 700_000);
        }
        bytes memory signatures = _signBatch(reports);
        uint256 before = gasleft();
        market.settleBatch(reports, signatures);
        uint256 used = before - gasleft();
        // Execution only; calldata of 256 reports adds at most 256 * 416 * 16 = 1.7 M.
        assertLt(used + 256 * 416 * 16 + 21_000, 10_000_000, "256 reports under a third of a 30 M block");
        assertEq(_rental(reports[255].rentalId).sequence, 1, "all settled");
    }

    /// @dev The power limit is snapshotted at open from the GPU-model table.
    function test_openRental_snapshotsThePowerLimit() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        assertEq(_rental(rentalId).powerLimitW, POWER_LIMIT_W, "registered model's limit");
    }
}
