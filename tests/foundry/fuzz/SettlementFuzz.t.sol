// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {
    MarketParams,
    Rental,
    RentalStatus,
    EndReason,
    UsageReport,
    FaultReport
} from "../../../contracts/types/DataTypes.sol";
import {IUsageSettlement} from "../../../interfaces/IUsageSettlement.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";
import {ReportSigning} from "../utils/ReportSigning.sol";

/// @notice Settlement arithmetic of docs/protocol.md under random prices, usage and budgets.
contract SettlementFuzzTest is MarketFixture {
    uint256 internal constant MAX_BUDGET = 1e15; // 1e9 tokens, well inside uint96
    uint256 internal constant MAX_AVAILABLE = 1e9; // ~31 GPU-years of GPU-seconds
    uint256 internal constant MAX_ENERGY = 1e15; // ~278 MWh in millijoules

    function setUp() public {
        _deployMarket();
    }

    function _boundPrices(uint72 pricePerGpuHour, uint72 pricePerKwh) internal pure returns (uint72, uint72) {
        pricePerGpuHour = uint72(bound(pricePerGpuHour, 0, 1_000e6));
        pricePerKwh = uint72(bound(pricePerKwh, 0, 100e6));
        if (pricePerGpuHour == 0 && pricePerKwh == 0) pricePerGpuHour = 1;
        return (pricePerGpuHour, pricePerKwh);
    }

    /// @dev costOf is floor(available * price / 3600) + floor(energy * kwhPrice / 3.6e9).
    function testFuzz_costOf_matchesSpec(uint72 pricePerGpuHour, uint72 pricePerKwh, uint64 available, uint128 energy)
        public
    {
        (pricePerGpuHour, pricePerKwh) = _boundPrices(pricePerGpuHour, pricePerKwh);
        uint256 rentalId = _activeRental(1, pricePerGpuHour, pricePerKwh, 1e6);
        assertEq(
            market.costOf(rentalId, available, energy),
            _specCost(available, energy, pricePerGpuHour, pricePerKwh),
            "costOf"
        );
    }

    /// @dev One report pays min(cost(cumulative), budget); the provider is credited its share of
    /// it; the rental ends exactly when the budget is used up.
    function testFuzz_settle_paysCostOfCumulativeCappedByBudget(
        uint72 pricePerGpuHour,
        uint72 pricePerKwh,
        uint256 budget,
        uint64 available,
        uint128 energy
    ) public {
        (pricePerGpuHour, pricePerKwh) = _boundPrices(pricePerGpuHour, pricePerKwh);
        budget = bound(budget, 1, MAX_BUDGET);
        available = uint64(bound(available, 0, MAX_AVAILABLE));
        energy = uint128(bound(energy, 0, MAX_ENERGY));
        uint256 rentalId = _activeRental(1, pricePerGpuHour, pricePerKwh, budget);

        _settle(rentalId, 1, available, energy);

        uint256 cost = _specCost(available, energy, pricePerGpuHour, pricePerKwh);
        uint256 expectedPaid = cost < budget ? cost : budget;
        Rental memory r = _rental(rentalId);
        assertEq(r.paid, expectedPaid, "paid == min(cost, budget)");
        assertEq(market.claimable(rentalId), _providerShare(expectedPaid, FEE_BPS), "provider earnings accrue");
        assertEq(market.withdrawable(provider, address(usd)), 0, "settlement credits no balance");
        assertEq(r.status == RentalStatus.Ended, cost >= budget, "ends iff budget exhausted");
        if (cost >= budget) assertEq(uint8(r.endReason), uint8(EndReason.BudgetExhausted), "end reason");
        assertEq(r.sequence, 1, "sequence stored");
        assertEq(r.availableGpuSeconds, available, "available stored");
    }

    /// @dev Splitting one cumulative report into k monotone cumulative reports pays exactly what
    /// the single report pays (never more), both in `paid` and in provider credit.
    function testFuzz_splitReports_neverPayMoreThanOneReport(
        uint72 pricePerGpuHour,
        uint72 pricePerKwh,
        uint256 budget,
        uint256 k,
        uint256[8] memory availableSteps,
        uint256[8] memory energySteps
    ) public {
        (pricePerGpuHour, pricePerKwh) = _boundPrices(pricePerGpuHour, pricePerKwh);
        budget = bound(budget, 1, MAX_BUDGET);
        k = bound(k, 1, 8);

        // Two providers list identical offers; rental A settles k reports, rental B one.
        address providerB = address(0xB0B2);
        uint256 offerA = _list(provider, 1, pricePerGpuHour, pricePerKwh);
        uint256 offerB = _list(providerB, 1, pricePerGpuHour, pricePerKwh);
        uint256 rentalA = _open(renter, offerA, 1, budget);
        uint256 rentalB = _open(renter, offerB, 1, budget);
        vm.prank(provider);
        market.startRental(rentalA);
        vm.prank(providerB);
        market.startRental(rentalB);

        uint64 available;
        uint128 energy;
        for (uint256 i = 0; i < k; i++) {
            available += uint64(bound(availableSteps[i], 0, MAX_AVAILABLE / 8));
            energy += uint128(bound(energySteps[i], 0, MAX_ENERGY / 8));
            if (_rental(rentalA).status != RentalStatus.Active) break; // budget exhausted early
            vm.warp(block.timestamp + 60);
            _settle(rentalA, uint64(i + 1), available, energy);
        }
        // The single report carries the final cumulative totals of the split ones.
        uint64 finalAvailable = available;
        uint128 finalEnergy = energy;
        _settle(rentalB, 1, finalAvailable, finalEnergy);

        Rental memory a = _rental(rentalA);
        Rental memory b = _rental(rentalB);
        uint256 creditA = market.claimable(rentalA);
        uint256 creditB = market.claimable(rentalB);
        assertLe(a.paid, b.paid, "split paid <= single paid");
        assertLe(creditA, creditB, "split credit <= single credit");
        if (a.status == RentalStatus.Active) {
            // Not exhausted: floors on cumulative totals make the split pay exactly the same.
            assertEq(a.paid, b.paid, "split paid == single paid");
            assertEq(creditA, creditB, "split credit == single credit");
        }
    }

    /// @dev Dust: up to 64 tiny cumulative reports at prices that leave a remainder on every step
    /// pay exactly floor(cost(total)), the same as one report, and never more than deposited.
    function testFuzz_dustSettlements_neverPayMoreThanOneReport(uint256 n, uint256 seed, uint72 oddPrice) public {
        n = bound(n, 1, 64);
        uint72 price = uint72(bound(oddPrice, 1, 3599)); // below one token unit per GPU-second
        uint256 rentalId = _activeRental(1, price, 1, 1e12);
        uint64 available;
        uint128 energy;
        for (uint256 i = 0; i < n; i++) {
            available += uint64(bound(uint256(keccak256(abi.encode(seed, i))), 0, 3));
            energy += uint128(bound(uint256(keccak256(abi.encode(seed, i, "e"))), 0, 3_599_999_999));
            _settle(rentalId, uint64(i + 1), available, energy);
        }
        uint256 single = _specCost(available, energy, price, 1);
        assertEq(_rental(rentalId).paid, single, "dust pays floor(cost(total))");
        assertLe(_rental(rentalId).paid, 1e12, "never more than deposited");
        assertEq(usd.balanceOf(address(market)), 1e12, "the deposit stays in the market until withdrawn");
        assertEq(
            market.claimable(rentalId) + _rental(rentalId).paid * FEE_BPS / 10_000,
            _rental(rentalId).paid,
            "earnings + pending fee == paid"
        );
    }

    /// @dev Whoever submits a valid report (a front-runner included), the payout and who gets it
    /// are the same.
    function testFuzz_settle_submitterDoesNotChangePayout(address submitter, uint64 available) public {
        vm.assume(submitter != address(0));
        available = uint64(bound(available, 1, MAX_AVAILABLE));
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1e12);
        _warpToCover(rentalId, available, 0);
        UsageReport memory report = _report(rentalId, 1, available, 0);
        bytes memory signatures = _signUsage(report);
        vm.prank(submitter);
        market.settle(report, signatures);
        uint256 expected = _specCost(available, 0, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
        assertEq(_rental(rentalId).paid, expected, "payment independent of submitter");
        assertEq(market.claimable(rentalId), _providerShare(expected, FEE_BPS), "provider earns");
        _claim(rentalId);
        assertEq(market.withdrawable(provider, address(usd)), _providerShare(expected, FEE_BPS), "provider paid");
        if (submitter != provider) assertEq(market.withdrawable(submitter, address(usd)), 0, "submitter gets nothing");
    }

    /// @dev With cumulative energy that may go down (a quorum error), the rental never pays more
    /// than the largest cost any settled report attested, nor more than the budget.
    function testFuzz_settle_nonMonotoneEnergyPaysRunningMaxOfCost(
        uint72 pricePerGpuHour,
        uint72 pricePerKwh,
        uint256 budget,
        uint256[6] memory availableSteps,
        uint256[6] memory energies
    ) public {
        (pricePerGpuHour, pricePerKwh) = _boundPrices(pricePerGpuHour, pricePerKwh);
        budget = bound(budget, 1, MAX_BUDGET);
        uint256 rentalId = _activeRental(1, pricePerGpuHour, pricePerKwh, budget);
        uint64 available;
        uint256 maxCost;
        for (uint256 i = 0; i < availableSteps.length; i++) {
            if (_rental(rentalId).status != RentalStatus.Active) break;
            available += uint64(bound(availableSteps[i], 0, MAX_AVAILABLE / 8));
            uint128 energy = uint128(bound(energies[i], 0, MAX_ENERGY));
            uint256 paidBefore = _rental(rentalId).paid;
            _settle(rentalId, uint64(i + 1), available, energy);
            uint256 cost = _specCost(available, energy, pricePerGpuHour, pricePerKwh);
            if (cost > maxCost) maxCost = cost;
            uint256 paid = _rental(rentalId).paid;
            assertEq(paid, maxCost < budget ? maxCost : budget, "paid == min(running max cost, budget)");
            assertLe(paid - paidBefore, budget - paidBefore, "payment <= remaining budget");
        }
    }

    /// @dev Each payment is at most the remaining budget, even across top-ups, and paid never
    /// exceeds the budget.
    function testFuzz_settle_paymentNeverExceedsRemainingBudget(
        uint256 budget,
        uint256[6] memory availableSteps,
        uint256[6] memory topUps
    ) public {
        budget = bound(budget, 1, 1_000e6);
        uint256 rentalId = _activeRental(4, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, budget);
        uint64 available;
        uint128 energy;
        for (uint256 i = 0; i < availableSteps.length; i++) {
            Rental memory before = _rental(rentalId);
            if (before.status != RentalStatus.Active) break;
            uint256 topUp = bound(topUps[i], 0, 100e6);
            if (topUp != 0) {
                usd.mint(renter, topUp);
                vm.startPrank(renter);
                usd.approve(address(market), topUp);
                market.topUp(rentalId, topUp);
                vm.stopPrank();
                before = _rental(rentalId);
            }
            available += uint64(bound(availableSteps[i], 0, 4 * 86_400));
            energy += uint128(uint256(available) * 700_000); // 700 W per GPU
            vm.warp(block.timestamp + 1 hours);
            _settle(rentalId, uint64(i + 1), available, energy);
            Rental memory after_ = _rental(rentalId);
            assertLe(after_.paid - before.paid, uint256(before.budget) - before.paid, "payment <= remaining");
            assertLe(after_.paid, after_.budget, "paid <= budget");
        }
    }

    /// @dev Per settlement, provider credit + fee increase == payment; at finalization the renter
    /// refund, the provider's credit and the treasury fee add up to the budget exactly.
    function testFuzz_feePlusProviderShareEqualsPayment(
        uint16 feeBps,
        uint256 budget,
        uint256[5] memory availableSteps,
        uint256[5] memory energySteps
    ) public {
        feeBps = uint16(bound(feeBps, 0, 1000));
        vm.startPrank(governance);
        market.setParams(_paramsWithFee(feeBps));
        vm.stopPrank();
        budget = bound(budget, 1, MAX_BUDGET);
        uint256 rentalId = _activeRental(2, 3_333_333, 777_777, budget);

        uint64 available;
        uint128 energy;
        for (uint256 i = 0; i < availableSteps.length; i++) {
            Rental memory before = _rental(rentalId);
            if (before.status != RentalStatus.Active) break;
            available += uint64(bound(availableSteps[i], 0, 1e7));
            energy += uint128(bound(energySteps[i], 0, 1e13));
            // Earnings = credited balance + still claimable; a claim moves between the two.
            uint256 earnedBefore = market.withdrawable(provider, address(usd)) + market.claimable(rentalId);
            _settle(rentalId, uint64(i + 1), available, energy);
            if (i % 2 == 0) _claim(rentalId);
            Rental memory after_ = _rental(rentalId);
            uint256 payment = after_.paid - before.paid;
            uint256 credit = market.withdrawable(provider, address(usd)) + market.claimable(rentalId) - earnedBefore;
            uint256 feeIncrease = after_.paid * feeBps / 10_000 - before.paid * feeBps / 10_000;
            assertEq(credit + feeIncrease, payment, "credit + fee == payment");
        }

        if (_rental(rentalId).status == RentalStatus.Active) {
            vm.prank(renter);
            market.endRental(rentalId);
        }
        _finalizeAfterGrace(rentalId);
        uint256 paid = _rental(rentalId).paid;
        uint256 providerTotal = market.withdrawable(provider, address(usd));
        uint256 treasuryTotal = market.withdrawable(treasury, address(usd));
        uint256 renterTotal = market.withdrawable(renter, address(usd));
        assertEq(treasuryTotal, paid * feeBps / 10_000, "fee on cumulative paid");
        assertEq(providerTotal + treasuryTotal, paid, "provider + fee == paid");
        assertEq(providerTotal + treasuryTotal + renterTotal, budget, "everything accounted");
        assertEq(usd.balanceOf(address(market)), budget, "market holds exactly the budget");
    }

    /// @dev The contract's digests equal those computed from the type strings of
    /// docs/protocol.md, for any field values.
    function testFuzz_digests_matchSpec(UsageReport memory report, FaultReport memory fault) public view {
        assertEq(market.usageReportDigest(report), ReportSigning.usageDigest(report, address(market)), "usage");
        UsageReport[] memory batch = new UsageReport[](2);
        batch[0] = report;
        batch[1] = report;
        batch[1].sequence = report.sequence ^ 1;
        assertEq(market.usageBatchDigest(batch), ReportSigning.batchDigest(batch, address(market)), "batch");
        assertEq(market.faultReportDigest(fault), ReportSigning.faultDigest(fault, address(market)), "fault");
    }

    /// @dev A report whose sequence is not above the last settled one is rejected, whatever its
    /// totals.
    function testFuzz_settle_rejectsStaleSequence(uint64 firstSequence, uint64 staleSequence, uint64 available) public {
        firstSequence = uint64(bound(firstSequence, 1, type(uint32).max));
        staleSequence = uint64(bound(staleSequence, 0, firstSequence));
        available = uint64(bound(available, 0, MAX_AVAILABLE));
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1e12);
        _settle(rentalId, firstSequence, 1000, 0);
        UsageReport memory report = _report(rentalId, staleSequence, available + 1000, 0);
        bytes memory signatures = _signUsage(report);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageSettlement.UsageSettlement_StaleSequence.selector, rentalId, staleSequence, uint32(firstSequence)
            )
        );
        market.settle(report, signatures);
    }

    /// @dev A batch settles the same totals as the reports one by one, and skips stale entries.
    function testFuzz_settleBatch_matchesSingleSettlements(uint256 n, uint256 seed) public {
        n = bound(n, 1, 6);
        uint256 offerId = _list(provider, uint16(n), PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
        UsageReport[] memory reports = new UsageReport[](n + 1);
        uint256 expectedPaid;
        uint256[] memory rentalIds = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            rentalIds[i] = _open(renter, offerId, 1, 50e6);
            vm.prank(provider);
            market.startRental(rentalIds[i]);
        }
        vm.warp(block.timestamp + 30 days); // every report below is within its rental's bounds
        for (uint256 i = 0; i < n; i++) {
            uint256 rentalId = rentalIds[i];
            uint64 available = uint64(bound(uint256(keccak256(abi.encode(seed, i))), 0, 30 days));
            reports[i] = _report(rentalId, 1, available, uint128(available) * 350_000);
            uint256 cost = _specCost(available, uint256(available) * 350_000, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
            expectedPaid += cost < 50e6 ? cost : 50e6;
        }
        reports[n] = reports[0]; // a duplicate: stale by the time it is reached, so skipped
        market.settleBatch(reports, _signBatch(reports));
        uint256 paid;
        for (uint256 i = 0; i < n; i++) {
            paid += _rental(reports[i].rentalId).paid;
        }
        assertEq(paid, expectedPaid, "batch pays the sum of single payments");
        assertEq(market.withdrawable(provider, address(usd)), 0, "nothing credited before a claim");
        market.claim(rentalIds);
        assertEq(
            market.withdrawable(provider, address(usd)), _sumShares(reports, n), "provider credited each rental's share"
        );
    }

    function _sumShares(UsageReport[] memory reports, uint256 n) internal view returns (uint256 total) {
        for (uint256 i = 0; i < n; i++) {
            total += _providerShare(_rental(reports[i].rentalId).paid, FEE_BPS);
        }
    }

    function _paramsWithFee(uint16 feeBps) internal view returns (MarketParams memory p) {
        p = _defaultParams();
        p.protocolFeeBps = feeBps;
    }
}
