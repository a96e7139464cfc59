// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {
    MarketParams,
    OfferTerms,
    Rental,
    RentalStatus,
    UsageReport,
    FaultReport
} from "../../../contracts/types/DataTypes.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";
import {ReportSigning} from "../utils/ReportSigning.sol";

/// @notice One test per external function of GpuRentMarket, each making that call once from a
/// prepared state, for `forge snapshot` (committed as .gas-snapshot; see
/// `forge snapshot --match-contract GasSnapshotTest`). Preparation inside a test runs with gas
/// metering paused, so each line of the snapshot is the call itself plus the test's own small
/// overhead (a prank, reading calldata), not its set-up.
contract GasSnapshotTest is MarketFixture {
    uint256 internal offerId;
    uint256 internal settledRentalId; // Active, one report settled (sequence 1)
    uint256 internal openRentalId; // Open
    uint256 internal activeRentalId; // Active, nothing settled
    uint256 internal endedRentalId; // Ended by the renter
    uint256 internal challengedRentalId; // Active, one report settled with one challenge failed
    UsageReport internal nextReport; // sequence 2 for settledRentalId
    bytes internal nextReportSignatures;

    function setUp() public {
        _deployMarket();
        _stake(provider, 10_000e6);
        vm.prank(provider);
        offerId = market.createOffer(_terms(8, PRICE_PER_GPU_HOUR, PRICE_PER_KWH));
        settledRentalId = _open(renter, offerId, 1, 1_000e6);
        activeRentalId = _open(renter, offerId, 1, 1_000e6);
        endedRentalId = _open(renter, offerId, 1, 1_000e6);
        vm.startPrank(provider);
        market.startRental(settledRentalId);
        market.startRental(activeRentalId);
        market.startRental(endedRentalId);
        vm.stopPrank();
        vm.warp(block.timestamp + 1 hours);
        _settle(settledRentalId, 1, 3600, 2_520_000_000);
        _settle(endedRentalId, 1, 3600, 2_520_000_000);
        _claim(settledRentalId); // the provider has a balance to withdraw
        vm.prank(renter);
        market.endRental(endedRentalId);
        vm.warp(block.timestamp + 10 minutes);
        openRentalId = _open(renter, offerId, 1, 1_000e6);
        challengedRentalId = _open(renter, offerId, 1, 1_000e6);
        vm.prank(provider);
        market.startRental(challengedRentalId);
        vm.warp(block.timestamp + 1 hours);
        _settle(challengedRentalId, 1, 3600, 2_520_000_000, 0, 1);
        nextReport = _report(settledRentalId, 2, 4200, 2_940_000_000);
        nextReportSignatures = _signUsage(nextReport);
    }

    /// @dev After in-test preparation (metering paused), make every touched account and slot
    /// cold again so that the measured call pays what it would in its own transaction.
    function _coolAll() internal {
        vm.cool(address(market));
        vm.cool(address(usd));
        vm.cool(address(stakeToken));
    }

    /*//////////////////////////////////////////////////////////////
                               GOVERNANCE
    //////////////////////////////////////////////////////////////*/

    function test_gas_setParams() public {
        MarketParams memory p = _defaultParams();
        p.protocolFeeBps = 300;
        vm.prank(governance);
        market.setParams(p);
    }

    function test_gas_setPaymentToken() public {
        vm.prank(governance);
        market.setPaymentToken(address(stakeToken), true);
    }

    function test_gas_setGpuModel() public {
        vm.prank(governance);
        market.setGpuModel("NVIDIA H200", 700, 143_771);
    }

    function test_gas_setStakeToken() public {
        vm.prank(governance);
        market.setStakeToken(address(usd), 50e6);
    }

    function test_gas_setSignerSet_5signers() public {
        vm.pauseGasMetering();
        address[] memory signers = ReportSigning.sortedAddresses(oracleKeys);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(governance);
        market.setSignerSet(signers, 3);
    }

    function test_gas_grantRole() public {
        bytes32 role = market.GOVERNANCE_ROLE();
        vm.prank(governance);
        market.grantRole(role, keeper);
    }

    function test_gas_revokeRole() public {
        bytes32 role = market.GOVERNANCE_ROLE();
        vm.prank(governance);
        market.revokeRole(role, governance);
    }

    function test_gas_renounceRole() public {
        bytes32 role = market.GOVERNANCE_ROLE();
        vm.prank(governance);
        market.renounceRole(role, governance);
    }

    /*//////////////////////////////////////////////////////////////
                                STAKING
    //////////////////////////////////////////////////////////////*/

    function test_gas_stake() public {
        vm.pauseGasMetering();
        stakeToken.mint(provider, 100e6);
        vm.prank(provider);
        stakeToken.approve(address(market), 100e6);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(provider);
        market.stake(address(stakeToken), 100e6);
    }

    function test_gas_requestUnstake() public {
        vm.prank(provider);
        market.requestUnstake(100e6);
    }

    function test_gas_completeUnstake() public {
        vm.pauseGasMetering();
        vm.prank(provider);
        market.requestUnstake(100e6);
        vm.warp(block.timestamp + UNBONDING_DELAY);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(provider);
        market.completeUnstake();
    }

    function test_gas_slash_3of5() public {
        vm.pauseGasMetering();
        FaultReport memory fault = _fault(settledRentalId, 0, 1);
        bytes memory signatures = _signFault(fault);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(keeper);
        market.slash(fault, signatures);
    }

    /*//////////////////////////////////////////////////////////////
                                 OFFERS
    //////////////////////////////////////////////////////////////*/

    function test_gas_createOffer() public {
        vm.pauseGasMetering();
        OfferTerms memory terms = _terms(2, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(provider);
        market.createOffer(terms);
    }

    function test_gas_updateOffer() public {
        vm.pauseGasMetering();
        OfferTerms memory terms = _terms(8, PRICE_PER_GPU_HOUR + 1, PRICE_PER_KWH);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(provider);
        market.updateOffer(offerId, terms);
    }

    function test_gas_withdrawOffer() public {
        vm.prank(provider);
        market.withdrawOffer(offerId);
    }

    /*//////////////////////////////////////////////////////////////
                                RENTALS
    //////////////////////////////////////////////////////////////*/

    function test_gas_openRental() public {
        vm.pauseGasMetering();
        usd.mint(renter, 100e6);
        vm.prank(renter);
        usd.approve(address(market), 100e6);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(renter);
        market.openRental(offerId, 0, 2, 100e6, bytes32(0));
    }

    function test_gas_startRental() public {
        vm.prank(provider);
        market.startRental(openRentalId);
    }

    function test_gas_topUp() public {
        vm.pauseGasMetering();
        usd.mint(renter, 100e6);
        vm.prank(renter);
        usd.approve(address(market), 100e6);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(renter);
        market.topUp(activeRentalId, 100e6);
    }

    function test_gas_cancelRental() public {
        vm.prank(renter);
        market.cancelRental(openRentalId);
    }

    function test_gas_endRental() public {
        vm.prank(renter);
        market.endRental(activeRentalId);
    }

    function test_gas_closeSilentRental() public {
        vm.pauseGasMetering();
        vm.warp(block.timestamp + SILENCE_TIMEOUT + 1);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(keeper);
        market.closeSilentRental(activeRentalId);
    }

    function test_gas_finalizeRental() public {
        vm.pauseGasMetering();
        vm.warp(block.timestamp + SETTLEMENT_GRACE);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(provider);
        market.finalizeRental(endedRentalId);
    }

    /// @dev Credits one rental's accrued earnings (settled once, never claimed) to its provider.
    function test_gas_claim_1rental() public {
        vm.pauseGasMetering();
        uint256[] memory ids = new uint256[](1);
        ids[0] = endedRentalId;
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(keeper);
        market.claim(ids);
    }

    function test_gas_lastSettlement() public view {
        market.lastSettlement(settledRentalId);
    }

    function test_gas_MAX_BATCH_REPORTS() public view {
        assertEq(market.MAX_BATCH_REPORTS(), 256, "cap");
    }

    function test_gas_claimable() public view {
        market.claimable(endedRentalId);
    }

    function test_gas_setSignerSetOverlap() public {
        vm.prank(governance);
        market.setSignerSetOverlap(2 days);
    }

    function test_gas_signerSetRotation() public view {
        market.signerSetRotation();
    }

    function test_gas_withdraw() public {
        vm.prank(provider);
        market.withdraw(address(usd));
    }

    /*//////////////////////////////////////////////////////////////
                               SETTLEMENT
    //////////////////////////////////////////////////////////////*/

    /// @dev One rental, quorum 3 of 5, second report (warm rental, provider balance non-zero).
    function test_gas_settle_3of5() public {
        vm.pauseGasMetering();
        UsageReport memory report = nextReport;
        bytes memory signatures = nextReportSignatures;
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(keeper);
        market.settle(report, signatures);
    }

    /// @dev As test_gas_settle_3of5, with a report carrying a failed challenge that the rental's
    /// record does not hold yet: the record is written (its first write: 0 -> non-zero). A report
    /// with passed challenges only, while the rental is Active, does not touch the record.
    function test_gas_settle_3of5_challengeRecordFirstWrite() public {
        vm.pauseGasMetering();
        UsageReport memory report = nextReport;
        report.challengesFailed = 1;
        bytes memory signatures = _signUsage(report);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(keeper);
        market.settle(report, signatures);
    }

    /// @dev As test_gas_settle_3of5, with a report carrying a failed challenge the rental's
    /// record already holds: one cold read, no write.
    function test_gas_settle_3of5_challengeRecordUnchanged() public {
        vm.pauseGasMetering();
        vm.warp(block.timestamp + 60);
        UsageReport memory report = _report(challengedRentalId, 2, 3660, 2_562_000_000);
        report.challengesFailed = 1;
        bytes memory signatures = _signUsage(report);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(keeper);
        market.settle(report, signatures);
    }

    /// @dev Ten rentals of one offer under one 3-of-5 batch signature, each at its first report.
    function test_gas_settleBatch_10rentals_3of5() public {
        vm.pauseGasMetering();
        UsageReport[] memory reports = new UsageReport[](10);
        for (uint256 i = 0; i < 10; i++) {
            uint256 rentalId = _open(renter, offerId, 1, 100e6);
            vm.prank(provider);
            market.startRental(rentalId);
            reports[i].rentalId = rentalId;
        }
        vm.warp(block.timestamp + 600);
        for (uint256 i = 0; i < 10; i++) {
            reports[i] = _report(reports[i].rentalId, 1, 600, 420_000_000);
        }
        bytes memory signatures = _signBatch(reports);
        _coolAll();
        vm.resumeGasMetering();
        vm.prank(keeper);
        market.settleBatch(reports, signatures);
    }

    function test_gas_verifyQuorum_3of5() public {
        vm.pauseGasMetering();
        bytes32 digest = ReportSigning.usageDigest(nextReport, address(market));
        bytes memory signatures = nextReportSignatures;
        _coolAll();
        vm.resumeGasMetering();
        market.verifyQuorum(digest, signatures);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_gas_usageReportDigest() public {
        vm.pauseGasMetering();
        UsageReport memory report = nextReport;
        _coolAll();
        vm.resumeGasMetering();
        market.usageReportDigest(report);
    }

    function test_gas_usageBatchDigest_2reports() public {
        vm.pauseGasMetering();
        UsageReport[] memory reports = new UsageReport[](2);
        reports[0] = nextReport;
        reports[1] = nextReport;
        _coolAll();
        vm.resumeGasMetering();
        market.usageBatchDigest(reports);
    }

    function test_gas_faultReportDigest() public {
        vm.pauseGasMetering();
        FaultReport memory fault = _fault(settledRentalId, 0, 1);
        _coolAll();
        vm.resumeGasMetering();
        market.faultReportDigest(fault);
    }

    function test_gas_costOf() public view {
        market.costOf(settledRentalId, 3600, 2_520_000_000);
    }

    function test_gas_params() public view {
        market.params();
    }

    function test_gas_isPaymentToken() public view {
        market.isPaymentToken(address(usd));
    }

    function test_gas_minStakePerGpu() public view {
        market.minStakePerGpu(address(stakeToken));
    }

    function test_gas_DEFAULT_ADMIN_ROLE() public view {
        market.DEFAULT_ADMIN_ROLE();
    }

    function test_gas_GOVERNANCE_ROLE() public view {
        market.GOVERNANCE_ROLE();
    }

    function test_gas_signerSet() public view {
        market.signerSet();
    }

    function test_gas_isSigner() public view {
        market.isSigner(keeper);
    }

    function test_gas_stakeOf() public view {
        market.stakeOf(provider);
    }

    function test_gas_requiredStake() public view {
        market.requiredStake(provider, 8);
    }

    function test_gas_isFaultSettled() public view {
        market.isFaultSettled(settledRentalId, 0);
    }

    function test_gas_getOffer() public view {
        market.getOffer(offerId);
    }

    function test_gas_offerCount() public view {
        market.offerCount();
    }

    function test_gas_getRental() public view {
        market.getRental(settledRentalId);
    }

    function test_gas_rentalCount() public view {
        market.rentalCount();
    }

    function test_gas_withdrawable() public view {
        market.withdrawable(provider, address(usd));
    }

    function test_gas_reputationOf() public view {
        market.reputationOf(provider);
    }

    function test_gas_reputationScore() public view {
        market.reputationScore(provider);
    }

    function test_gas_hasRole() public view {
        market.hasRole(market.GOVERNANCE_ROLE(), governance);
    }

    function test_gas_getRoleAdmin() public view {
        market.getRoleAdmin(market.GOVERNANCE_ROLE());
    }

    function test_gas_supportsInterface() public view {
        market.supportsInterface(0x7965db0b); // IAccessControl
    }

    function test_gas_eip712Domain() public view {
        market.eip712Domain();
    }

    /// @dev Sanity: the prepared states are what the tests above assume.
    function test_gas_fixtureStates() public view {
        assertTrue(market.getRental(settledRentalId).status == RentalStatus.Active, "settled rental active");
        assertTrue(market.getRental(openRentalId).status == RentalStatus.Open, "open rental open");
        assertTrue(market.getRental(endedRentalId).status == RentalStatus.Ended, "ended rental ended");
        Rental memory r = market.getRental(settledRentalId);
        assertEq(r.sequence, 1, "one report settled");
        assertGt(market.withdrawable(provider, address(usd)), 0, "provider has claimed earnings");
        assertGt(market.claimable(endedRentalId), 0, "ended rental has unclaimed earnings");
    }
}
