// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Rental, RentalStatus, UsageReport} from "../../../contracts/types/DataTypes.sol";
import {IUsageSettlement} from "../../../interfaces/IUsageSettlement.sol";
import {IOracleQuorum} from "../../../interfaces/IOracleQuorum.sol";
import {IRentalEscrow} from "../../../interfaces/IRentalEscrow.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";
import {ReportSigning} from "../utils/ReportSigning.sol";

/// @notice Earnings accrue in the rental and `claim` / finalization credit them; a signer-set
/// rotation never fails a healthy rental (issue 7, item 8).
contract ClaimAndRotationTest is MarketFixture {
    function setUp() public {
        _deployMarket();
    }

    /*//////////////////////////////////////////////////////////////
                                 CLAIM
    //////////////////////////////////////////////////////////////*/

    function _ids(uint256 a) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](1);
        ids[0] = a;
    }

    function test_settle_creditsNoBalance_earningsAccrueInTheRental() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        _settle(rentalId, 1, 3600, 0);
        uint256 paid = _rental(rentalId).paid;
        assertEq(paid, PRICE_PER_GPU_HOUR, "one GPU-hour paid out of the budget");
        assertEq(market.withdrawable(provider, address(usd)), 0, "no balance written by settlement");
        assertEq(market.claimable(rentalId), _providerShare(paid, FEE_BPS), "earnings = paid - fee");
    }

    function test_claim_anyoneMayCall_creditsTheProviderOnce() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        _settle(rentalId, 1, 3600, 0);
        uint256 share = _providerShare(_rental(rentalId).paid, FEE_BPS);
        vm.expectEmit(address(market));
        emit IUsageSettlement.EarningsClaimed(rentalId, provider, share);
        vm.prank(address(0xDEAD));
        assertEq(market.claim(_ids(rentalId)), share, "returns the amount credited");
        assertEq(market.withdrawable(provider, address(usd)), share, "provider credited");
        assertEq(market.withdrawable(address(0xDEAD), address(usd)), 0, "caller gets nothing");
        assertEq(market.claim(_ids(rentalId)), 0, "a second claim credits nothing");
        assertEq(market.withdrawable(provider, address(usd)), share, "still credited once");
        // More usage, another claim: only the increase.
        _settle(rentalId, 2, 7200, 0);
        uint256 share2 = _providerShare(_rental(rentalId).paid, FEE_BPS);
        market.claim(_ids(rentalId));
        assertEq(market.withdrawable(provider, address(usd)), share2, "credited up to the new share");
        assertEq(_rental(rentalId).claimed, share2, "claimed recorded");
    }

    function test_claim_unknownRental_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(IRentalEscrow.RentalEscrow_UnknownRental.selector, 42));
        market.claim(_ids(42));
    }

    function test_claim_manyRentalsOfManyProviders_eachCreditedItsOwn() public {
        address providerB = address(0xB0B2);
        uint256 a = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        uint256 offerB = _list(providerB, 1, PRICE_PER_GPU_HOUR, 0);
        uint256 b = _open(renter, offerB, 1, 1_000e6);
        vm.prank(providerB);
        market.startRental(b);
        _settle(a, 1, 3600, 0);
        _settle(b, 1, 1800, 0);
        uint256[] memory ids = new uint256[](3);
        (ids[0], ids[1], ids[2]) = (a, b, a); // a repeat credits nothing more
        market.claim(ids);
        assertEq(market.withdrawable(provider, address(usd)), _providerShare(_rental(a).paid, FEE_BPS), "A");
        assertEq(market.withdrawable(providerB, address(usd)), _providerShare(_rental(b).paid, FEE_BPS), "B");
    }

    /// @dev Finalization credits what is still unclaimed, so claimed + finalized = share(paid),
    /// and the budget splits exactly into provider share, fee and refund.
    function testFuzz_finalize_creditsOnlyTheUnclaimedRest(uint64 first, uint64 second, bool claimBetween) public {
        first = uint64(bound(first, 0, 100 hours));
        second = uint64(bound(second, first, 200 hours));
        uint256 budget = 1_000e6;
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, budget);
        _settle(rentalId, 1, first, 0);
        if (claimBetween) _claim(rentalId);
        if (_rental(rentalId).status == RentalStatus.Active) _settle(rentalId, 2, second, 0);
        if (_rental(rentalId).status == RentalStatus.Active) {
            vm.prank(renter);
            market.endRental(rentalId);
        }
        vm.warp(uint256(_rental(rentalId).endedAt) + SETTLEMENT_GRACE); // finalization waits the grace
        vm.prank(provider);
        market.finalizeRental(rentalId);
        Rental memory r = _rental(rentalId);
        uint256 share = _providerShare(r.paid, FEE_BPS);
        assertEq(market.withdrawable(provider, address(usd)), share, "provider: share of paid, once");
        assertEq(r.claimed, share, "all claimed at finalization");
        assertEq(market.claimable(rentalId), 0, "nothing left");
        assertEq(
            share + market.withdrawable(treasury, address(usd)) + market.withdrawable(renter, address(usd)),
            budget,
            "budget = share + fee + refund"
        );
    }

    /*//////////////////////////////////////////////////////////////
                           SIGNER-SET ROTATION
    //////////////////////////////////////////////////////////////*/

    /// @dev Five fresh keys (not the fixture's), sorted by address.
    function _newKeys() internal pure returns (uint256[] memory keys) {
        keys = new uint256[](5);
        for (uint256 i = 0; i < 5; i++) {
            keys[i] = uint256(keccak256(abi.encode("rotated oracle", i))) % ReportSigning.SECP256K1_N;
        }
    }

    function _rotate(uint8 threshold) internal returns (uint256[] memory keys) {
        keys = _newKeys();
        _installSigners(keys, threshold);
    }

    /// @dev A report signed for version 1 by the old quorum, after the set rotated to version 2.
    function _oldSignedReport(uint256 rentalId, uint64 sequence, uint64 available)
        internal
        view
        returns (UsageReport memory report, bytes memory signatures)
    {
        report = _report(rentalId, sequence, available, 0);
        report.signerSetVersion = 1;
        signatures = ReportSigning.signQuorum(_quorumKeys(), ReportSigning.usageDigest(report, address(market)));
    }

    function test_rotation_previousSetReportStillSettlesWithinTheOverlap() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        vm.warp(block.timestamp + 600);
        _rotate(2);
        assertEq(_signerSetVersion(), 2, "rotated");
        vm.warp(block.timestamp + 1 days); // the last second of the overlap
        (UsageReport memory report, bytes memory signatures) = _oldSignedReport(rentalId, 1, 600);
        market.settle(report, signatures);
        assertEq(_rental(rentalId).sequence, 1, "old-version report settled");
        // A batch signed by the previous set, too.
        UsageReport[] memory reports = new UsageReport[](1);
        (reports[0],) = _oldSignedReport(rentalId, 2, 700);
        market.settleBatch(
            reports, ReportSigning.signQuorum(_quorumKeys(), ReportSigning.batchDigest(reports, address(market)))
        );
        assertEq(_rental(rentalId).sequence, 2, "old-version batch settled");
    }

    function test_rotation_previousSetReportRejectedAfterTheOverlap() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        _rotate(3);
        vm.warp(block.timestamp + 1 days + 1);
        (UsageReport memory report, bytes memory signatures) = _oldSignedReport(rentalId, 1, 600);
        vm.expectRevert(abi.encodeWithSelector(IOracleQuorum.OracleQuorum_WrongSignerSetVersion.selector, 1, 2));
        market.settle(report, signatures);
    }

    function test_rotation_twoVersionsBack_rejectedAtOnce() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        _rotate(3);
        _installSigners(oracleKeys, THRESHOLD); // version 3: the fixture's keys again
        vm.warp(block.timestamp + 600);
        (UsageReport memory report, bytes memory signatures) = _oldSignedReport(rentalId, 1, 600);
        vm.expectRevert(abi.encodeWithSelector(IOracleQuorum.OracleQuorum_WrongSignerSetVersion.selector, 1, 3));
        market.settle(report, signatures);
    }

    /// @dev The previous version counts only with its own members and threshold: new-set keys
    /// cannot sign for the old version, and old keys cannot sign for the new one.
    function test_rotation_previousVersionNeedsItsOwnMembersAndThreshold() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        uint256[] memory newKeys = _rotate(1);
        vm.warp(block.timestamp + 600);
        UsageReport memory report = _report(rentalId, 1, 600, 0);
        report.signerSetVersion = 1;
        bytes32 digest = ReportSigning.usageDigest(report, address(market));
        uint256[] memory one = new uint256[](1);
        one[0] = newKeys[0];
        vm.expectRevert(
            abi.encodeWithSelector(IOracleQuorum.OracleQuorum_NotEnoughSignatures.selector, 65, THRESHOLD)
        );
        market.settle(report, ReportSigning.signQuorum(one, digest));
        uint256[] memory threeNew = new uint256[](3);
        (threeNew[0], threeNew[1], threeNew[2]) = (newKeys[0], newKeys[1], newKeys[2]);
        threeNew = ReportSigning.sortKeysByAddress(threeNew);
        vm.expectRevert(
            abi.encodeWithSelector(IOracleQuorum.OracleQuorum_UnknownSigner.selector, 0, vm.addr(threeNew[0]))
        );
        market.settle(report, ReportSigning.signQuorum(threeNew, digest));
    }

    /// @dev The finding of issue 7 item 8: a rotation right before the silence timeout let
    /// anyone close a healthy rental. Silence now counts from the end of the rotation's overlap.
    function test_rotation_neverMakesAHealthyRentalSilent() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        _settle(rentalId, 1, 600, 0);
        uint256 settledAt = _rental(rentalId).lastSettledAt;
        vm.warp(settledAt + SILENCE_TIMEOUT - 1);
        uint256[] memory newKeys = _rotate(3);
        uint256 rotatedAt = block.timestamp;
        // Old nodes could not settle in time (say), and the new set takes a while: still not silent.
        vm.warp(settledAt + SILENCE_TIMEOUT + 1);
        uint256 until = rotatedAt + 1 days + SILENCE_TIMEOUT;
        vm.expectRevert(abi.encodeWithSelector(IRentalEscrow.RentalEscrow_TooEarly.selector, rentalId, until));
        market.closeSilentRental(rentalId);
        vm.warp(until);
        vm.expectRevert(abi.encodeWithSelector(IRentalEscrow.RentalEscrow_TooEarly.selector, rentalId, until));
        market.closeSilentRental(rentalId);
        // The new set settles within that time: healthy again.
        UsageReport memory report = _report(rentalId, 2, 1200, 0);
        market.settle(
            report, ReportSigning.signQuorum(_firstThree(newKeys), ReportSigning.usageDigest(report, address(market)))
        );
        assertTrue(_rental(rentalId).status == RentalStatus.Active, "still active");
    }

    function test_rotation_silenceStillClosesARentalNobodySettles() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        _rotate(3);
        vm.warp(block.timestamp + 1 days + SILENCE_TIMEOUT + 1);
        market.closeSilentRental(rentalId);
        assertTrue(_rental(rentalId).status == RentalStatus.Ended, "closed for silence");
    }

    function test_setSignerSetOverlap_boundedAndGovernanceOnly() public {
        vm.expectRevert();
        market.setSignerSetOverlap(1 hours);
        vm.startPrank(governance);
        vm.expectRevert(abi.encodeWithSelector(IOracleQuorum.OracleQuorum_InvalidOverlap.selector, 7 days + 1));
        market.setSignerSetOverlap(7 days + 1);
        market.setSignerSetOverlap(0);
        vm.stopPrank();
        (uint32 overlap,,) = market.signerSetRotation();
        assertEq(overlap, 0, "set");
        // Overlap 0 ends the old set at the rotation (emergency removal of a compromised set).
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1_000e6);
        _rotate(3);
        vm.warp(block.timestamp + 600);
        (UsageReport memory report, bytes memory signatures) = _oldSignedReport(rentalId, 1, 600);
        vm.expectRevert(abi.encodeWithSelector(IOracleQuorum.OracleQuorum_WrongSignerSetVersion.selector, 1, 2));
        market.settle(report, signatures);
    }

    function _firstThree(uint256[] memory keys) internal pure returns (uint256[] memory three) {
        three = new uint256[](3);
        (three[0], three[1], three[2]) = (keys[0], keys[1], keys[2]);
        three = ReportSigning.sortKeysByAddress(three);
    }
}
