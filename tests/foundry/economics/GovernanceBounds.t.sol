// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {
    MarketParams,
    OfferTerms,
    RentalTerms,
    RentalStatus,
    FaultReport,
    GpuModelSpec
} from "../../../contracts/types/DataTypes.sol";
import {GpuRentMarket} from "../../../contracts/GpuRentMarket.sol";
import {IOfferBook} from "../../../interfaces/IOfferBook.sol";
import {IRentalEscrow} from "../../../interfaces/IRentalEscrow.sol";
import {ReportSigning} from "../utils/ReportSigning.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";

/// @notice Issue 7, behaviours 5 and 6: governance is bounded and slow. Every parameter has an
/// enforced range (no timestamp overflow, fee and slash caps); a rental keeps the terms it opened
/// with (timeouts, grace, fee, slash terms, collateral, model physics); a disallowed stake token
/// backs nothing new; offers take memory from the GPU model table; changes go through a
/// TimelockController; and a renter always gets its refund without the provider.
contract GovernanceBoundsTest is MarketFixture {
    function setUp() public {
        _deployMarket();
    }

    function _setParams(MarketParams memory p) internal {
        vm.prank(governance);
        market.setParams(p);
    }

    function _expectInvalid(MarketParams memory p, string memory field) internal {
        vm.expectRevert(abi.encodeWithSignature("GpuRentMarket_InvalidParam(string)", field));
        vm.prank(governance);
        market.setParams(p);
    }

    /// @dev MarketParams fields by position (a memory struct is one word per field, in declaration
    /// order); a wrong position makes the expected revert name another field and the test fail.
    uint256 internal constant F_PROTOCOL_FEE_BPS = 1;
    uint256 internal constant F_RENTER_SLASH_SHARE_BPS = 2;
    uint256 internal constant F_SLASH_BPS = 3;
    uint256 internal constant F_START_TIMEOUT = 4;
    uint256 internal constant F_SILENCE_TIMEOUT = 5;
    uint256 internal constant F_SETTLEMENT_GRACE = 6;
    uint256 internal constant F_UNBONDING_DELAY = 7;
    uint256 internal constant F_MAX_RENTAL_DURATION = 8;
    uint256 internal constant F_SLASH_WINDOW_SECONDS = 9;
    uint256 internal constant F_REPUTATION_PRIOR = 10;

    /// @dev The default parameters with the field at `index` set to `value` are refused, naming
    /// `field`.
    function _expectInvalidField(uint256 index, uint256 value, string memory field) internal {
        MarketParams memory p = _defaultParams();
        _setMemoryWord(_pointer(p), index, value);
        _expectInvalid(p, field);
    }

    function _pointer(MarketParams memory p) internal pure returns (uint256 ptr) {
        assembly ("memory-safe") {
            ptr := p
        }
    }

    // ------------------------------------------------------------------ ranges (behaviour 6)

    /// @dev Issue 7.6: a huge unbondingDelay or startTimeout wrapped its uint32 timestamp (stake
    /// unbonded at once; no rental could start). Every duration now has a ceiling.
    function test_setParams_RevertWhen_aDurationWouldOverflowItsTimestamp() public {
        _expectInvalidField(F_UNBONDING_DELAY, type(uint32).max, "unbondingDelay");
        _expectInvalidField(F_START_TIMEOUT, type(uint32).max, "startTimeout");
        _expectInvalidField(F_SILENCE_TIMEOUT, type(uint32).max, "silenceTimeout");
        _expectInvalidField(F_SETTLEMENT_GRACE, type(uint32).max, "settlementGrace");
        _expectInvalidField(F_MAX_RENTAL_DURATION, type(uint32).max, "maxRentalDuration");
        _expectInvalidField(F_SLASH_WINDOW_SECONDS, 2 days, "slashWindowSeconds");
    }

    function test_setParams_RevertWhen_feeOrSlashAboveItsCap() public {
        _expectInvalidField(F_PROTOCOL_FEE_BPS, 1001, "protocolFeeBps");
        _expectInvalidField(F_SLASH_BPS, 5001, "slashBps");
        _expectInvalidField(F_RENTER_SLASH_SHARE_BPS, 10_001, "renterSlashShareBps");
        _expectInvalidField(F_REPUTATION_PRIOR, 0, "reputationPrior");
        _expectInvalidField(F_SILENCE_TIMEOUT, 59, "silenceTimeout");
    }

    /// @dev Bounds of every parameter, fuzzed: a parameter set is accepted iff each field is in
    /// its documented range.
    function testFuzz_setParams_acceptsExactlyTheDocumentedRanges(
        uint16 fee,
        uint16 slashBps,
        uint32 startTimeout,
        uint32 grace,
        uint32 maxRental,
        uint32 unbonding
    ) public {
        MarketParams memory p = _defaultParams();
        (p.protocolFeeBps, p.slashBps, p.startTimeout) = (fee, slashBps, startTimeout);
        (p.settlementGrace, p.maxRentalDuration, p.unbondingDelay) = (grace, maxRental, unbonding);
        bool ok = fee <= 1000 && slashBps <= 5000 && startTimeout >= 60 && startTimeout <= 7 days && grace >= 60
            && grace <= 7 days && maxRental >= 1 hours && maxRental <= 180 days
            && uint256(unbonding) > uint256(maxRental) + grace && unbonding <= 400 days;
        if (!ok) vm.expectRevert();
        _setParams(p);
        if (ok) assertEq(market.params().unbondingDelay, unbonding, "stored");
    }

    // ------------------------------------------------------------------ snapshots (behaviours 5, 6)

    /// @dev Issue 7.6: raising settlementGrace after a rental ended used to lock the renter's
    /// refund; the rental keeps the grace it opened with.
    function test_finalizeRental_graceFixedAtOpen_raisingItLaterDoesNotLockTheRefund() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.prank(renter);
        market.endRental(rentalId);
        MarketParams memory p = _defaultParams();
        p.settlementGrace = 7 days;
        p.unbondingDelay = MAX_RENTAL_DURATION + 7 days + 1;
        _setParams(p);
        vm.warp(block.timestamp + SETTLEMENT_GRACE);
        vm.prank(renter);
        market.finalizeRental(rentalId);
        assertEq(market.withdrawable(renter, address(usd)), 100e6, "refund on the rental's own grace");
    }

    /// @dev Issue 7.6: lowering silenceTimeout used to let anyone close every running rental.
    function test_closeSilentRental_timeoutFixedAtOpen_loweringItLaterClosesNothing() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        MarketParams memory p = _defaultParams();
        p.silenceTimeout = 60;
        _setParams(p);
        vm.warp(block.timestamp + 1 hours);
        uint256 until = uint256(_rental(rentalId).lastSettledAt) + SILENCE_TIMEOUT;
        vm.expectRevert(abi.encodeWithSelector(IRentalEscrow.RentalEscrow_TooEarly.selector, rentalId, until));
        vm.prank(keeper);
        market.closeSilentRental(rentalId);
    }

    /// @dev Issue 7.5: governance raised minStakePerGpu and slashBps (slash amounts read them
    /// live), set itself as treasury, renter share 0, and installed a 1-of-1 signer set of its
    /// own key: one self-signed fault took a provider's whole stake. Now the slash reads the
    /// rental's terms fixed at open, and all of a rental's faults together take at most its
    /// collateral, whatever governance signs.
    function test_slash_governanceCannotTakeMoreThanTheRentalsCollateral() public {
        _stake(provider, 10_000e6); // a large stake beyond the listed minimum
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        uint256 stakeBefore = market.stakeOf(provider).active;
        MarketParams memory p = _defaultParams();
        (p.treasury, p.renterSlashShareBps, p.slashBps) = (governance, 0, 5000);
        _setParams(p);
        vm.startPrank(governance);
        market.setStakeToken(address(stakeToken), 1_000_000e6);
        uint256[] memory ownKey = new uint256[](1);
        ownKey[0] = 0xBAD;
        address[] memory signers = ReportSigning.sortedAddresses(ownKey);
        market.setSignerSet(signers, 1);
        vm.stopPrank();
        (uint32 version,,) = market.signerSet();
        for (uint32 i = 0; i < 21; i++) {
            FaultReport memory fault = _fault(rentalId, i, uint8(i % 7) + 1);
            if (fault.kind == 4) continue;
            fault.signerSetVersion = version;
            bytes memory sig = ReportSigning.signQuorum(ownKey, ReportSigning.faultDigest(fault, address(market)));
            if (_rental(rentalId).slashed == _rental(rentalId).collateral) vm.expectRevert();
            market.slash(fault, sig);
            vm.warp(block.timestamp + SLASH_WINDOW);
        }
        assertEq(_rental(rentalId).slashed, MIN_STAKE_PER_GPU, "one rental's collateral, at the terms of its open");
        assertEq(market.stakeOf(provider).active, stakeBefore - MIN_STAKE_PER_GPU, "the rest of the stake is safe");
    }

    /// @dev rentalTerms returns every term fixed at open, and later offer, model and parameter
    /// changes leave it as it was.
    function test_rentalTerms_fixedAtOpen_laterChangesLeaveThemAlone() public {
        uint256 offerId = _list(provider, 2, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
        usd.mint(renter, 10e6);
        vm.startPrank(renter);
        usd.approve(address(market), 10e6);
        uint256 rentalId = market.openRental(offerId, 0, 2, 10e6, keccak256("workload spec"));
        vm.stopPrank();
        RentalTerms memory t = market.rentalTerms(rentalId);
        _checkTerms(t);
        // Changes after the open: offer, model table, parameters, stake minimum.
        OfferTerms memory changed = _terms(2, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
        (changed.agent, changed.minUptimeBps, changed.region) = (address(0xBEEF), 1, "us-east-1");
        vm.prank(provider);
        market.updateOffer(offerId, changed);
        vm.startPrank(governance);
        market.setGpuModel(H100, 350, 40_000);
        MarketParams memory p = _defaultParams();
        (p.protocolFeeBps, p.slashBps, p.silenceTimeout) = (1000, 5000, 60);
        market.setParams(p);
        market.setStakeToken(address(stakeToken), 1e6);
        vm.stopPrank();
        assertEq(keccak256(abi.encode(market.rentalTerms(rentalId))), keccak256(abi.encode(t)), "terms unchanged");
    }

    function _checkTerms(RentalTerms memory t) internal view {
        assertEq(t.agent, agent, "agent");
        assertEq(t.gpuCount, 2, "gpuCount");
        assertEq(t.powerLimitW, H100_POWER_LIMIT_W, "powerLimitW from the model table");
        assertEq(t.memoryMib, H100_MEMORY_MIB, "memoryMib from the model table");
        assertEq(t.minUptimeBps, 9500, "minUptimeBps");
        assertEq(t.feeBps, FEE_BPS, "feeBps");
        assertEq(t.gpuModel, H100, "gpuModel");
        assertEq(t.region, bytes32("eu-north-1"), "region");
        assertEq(t.workloadHash, keccak256("workload spec"), "workloadHash");
        assertEq(t.stakeToken, address(stakeToken), "stakeToken");
        assertEq(t.collateralPerGpu, MIN_STAKE_PER_GPU, "collateralPerGpu");
        assertEq(t.gridIntensityGPerKwh, 30, "grid intensity");
        assertEq(t.maxGapSeconds, 300, "maxGapSeconds");
        assertEq(t.maxDurationSeconds, 30 days, "maxDurationSeconds");
        assertEq(t.silenceTimeout, SILENCE_TIMEOUT, "silenceTimeout");
        assertEq(t.settlementGrace, SETTLEMENT_GRACE, "settlementGrace");
        assertEq(t.slashWindowSeconds, SLASH_WINDOW, "slashWindowSeconds");
        assertEq(t.slashBps, SLASH_BPS, "slashBps");
        assertEq(t.renterSlashShareBps, RENTER_SLASH_SHARE_BPS, "renterSlashShareBps");
        assertEq(market.rentalTerms(999).agent, address(0), "unknown rental: zero terms");
    }

    // ------------------------------------------------------------------ stake token, model table

    /// @dev Issue 7.6: a stake token governance disallowed still backed new offers and rentals.
    function test_disallowedStakeToken_backsNoNewOfferRentalOrStart() public {
        uint256 offerId = _list(provider, 2, PRICE_PER_GPU_HOUR, 0);
        uint256 openId = _open(renter, offerId, 1, 10e6);
        vm.prank(governance);
        market.setStakeToken(address(stakeToken), 0);
        OfferTerms memory terms = _terms(1, PRICE_PER_GPU_HOUR, 0);
        vm.expectRevert(abi.encodeWithSelector(IOfferBook.OfferBook_StakeTokenNotAllowed.selector, address(stakeToken)));
        vm.prank(provider);
        market.createOffer(terms);
        usd.mint(renter, 10e6);
        vm.startPrank(renter);
        usd.approve(address(market), 10e6);
        vm.expectRevert(abi.encodeWithSelector(IOfferBook.OfferBook_StakeTokenNotAllowed.selector, address(stakeToken)));
        market.openRental(offerId, 0, 1, 10e6, bytes32(0));
        vm.stopPrank();
        vm.expectRevert(abi.encodeWithSelector(IOfferBook.OfferBook_StakeTokenNotAllowed.selector, address(stakeToken)));
        vm.prank(provider);
        market.startRental(openId);
        // The renter is refunded without the provider; the provider can still leave.
        vm.prank(renter);
        market.cancelRental(openId);
        vm.startPrank(provider);
        market.withdrawOffer(offerId);
        market.requestUnstake(market.stakeOf(provider).active);
        vm.stopPrank();
    }

    /// @dev An offer's memory comes from the model table, so an offer cannot claim another
    /// model's memory; an unregistered model cannot be listed.
    function test_createOffer_memoryFromTheModelTable_unknownModelRefused() public {
        uint256 offerId = _list(provider, 1, PRICE_PER_GPU_HOUR, 0);
        assertEq(market.getOffer(offerId).memoryMib, H100_MEMORY_MIB, "memory from the table");
        GpuModelSpec memory spec = market.gpuModelOf(H100);
        assertEq(spec.powerLimitW, H100_POWER_LIMIT_W, "power limit");
        OfferTerms memory terms = _terms(1, PRICE_PER_GPU_HOUR, 0);
        terms.gpuModel = "NVIDIA Fake 9000";
        _stake(provider, MIN_STAKE_PER_GPU);
        vm.expectRevert(abi.encodeWithSelector(IOfferBook.OfferBook_UnknownGpuModel.selector, terms.gpuModel));
        vm.prank(provider);
        market.createOffer(terms);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, provider, market.GOVERNANCE_ROLE())
        );
        vm.prank(provider);
        market.setGpuModel(terms.gpuModel, 700, 1);
    }

    // ------------------------------------------------------------------ timelock (behaviour 5)

    /// @dev With the roles held by a TimelockController (as deploy sets it up), the proposer
    /// cannot change anything directly; a change waits the delay in public, then executes; the
    /// deployer holds no role.
    function test_timelock_parameterChangesWaitTheDelay_deployerHoldsNoRole() public {
        address proposer = address(0x5AFE);
        address[] memory proposers = new address[](1);
        proposers[0] = proposer;
        TimelockController timelock = new TimelockController(2 days, proposers, proposers, address(0));
        GpuRentMarket governed = new GpuRentMarket(address(timelock), _defaultParams());
        assertTrue(!governed.hasRole(governed.DEFAULT_ADMIN_ROLE(), address(this)), "deployer: no admin role");
        assertTrue(!governed.hasRole(governed.GOVERNANCE_ROLE(), address(this)), "deployer: no governance role");
        MarketParams memory p = _defaultParams();
        p.slashBps = 5000;
        bytes memory call = abi.encodeCall(GpuRentMarket.setParams, (p));
        vm.expectRevert();
        vm.prank(proposer);
        governed.setParams(p);
        vm.prank(proposer);
        timelock.schedule(address(governed), 0, call, bytes32(0), bytes32(0), 2 days);
        vm.expectRevert();
        vm.prank(proposer);
        timelock.execute(address(governed), 0, call, bytes32(0), bytes32(0));
        vm.warp(block.timestamp + 2 days);
        vm.prank(proposer);
        timelock.execute(address(governed), 0, call, bytes32(0), bytes32(0));
        assertEq(governed.params().slashBps, 5000, "executed after the delay");
    }

    // ------------------------------------------------------------------ refunds without the provider

    /// @dev Every path out for the renter, with a provider that does nothing (or disappears).
    function test_renterAlwaysGetsItsRefundWithoutTheProvider() public {
        uint256 offerId = _list(provider, 3, PRICE_PER_GPU_HOUR, 0);
        // Open, never started: the renter cancels at once.
        uint256 a = _open(renter, offerId, 1, 10e6);
        vm.prank(renter);
        market.cancelRental(a);
        // Active: the renter ends it and anyone finalizes after the grace.
        uint256 b = _open(renter, offerId, 1, 10e6);
        vm.prank(provider);
        market.startRental(b);
        vm.prank(renter);
        market.endRental(b);
        _finalizeAfterGrace(b);
        // Active and silent: anyone closes it, then finalizes.
        uint256 c = _open(renter, offerId, 1, 10e6);
        vm.prank(provider);
        market.startRental(c);
        vm.warp(block.timestamp + SILENCE_TIMEOUT + 1);
        vm.prank(keeper);
        market.closeSilentRental(c);
        _finalizeAfterGrace(c);
        assertEq(market.withdrawable(renter, address(usd)), 30e6, "three refunds, no provider action needed");
        assertTrue(_rental(c).status == RentalStatus.Finalized, "finalized");
    }
}
