// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Rental, RentalStatus, Stake, FaultReport, MarketParams} from "../../../contracts/types/DataTypes.sol";
import {TestStablecoin} from "../../../contracts/test/TestStablecoin.sol";
import {IProviderStaking} from "../../../interfaces/IProviderStaking.sol";
import {IRentalEscrow} from "../../../interfaces/IRentalEscrow.sol";
import {IOfferBook} from "../../../interfaces/IOfferBook.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";

/// @notice Issue 7, behaviours 1 and 3: a renter cannot drain a provider's stake (slashes are
/// bounded by the rental's own collateral, each kind once per window, IDLE_POWER_BUSY never
/// slashes, the renter's share never exceeds what the rental cost it), and stake backs running
/// rentals (collateral locked at start until finalization, startRental checks the offer and
/// the stake, durations capped). Stake and payment token are the same token here, as in a real
/// deployment, so the renter's compensation is paid.
contract SlashingBoundsTest is MarketFixture {
    uint8 internal constant DOWNTIME = 1;
    uint8 internal constant IDLE_POWER_BUSY = 4;

    function setUp() public {
        _deployMarket();
        vm.prank(governance);
        market.setStakeToken(address(usd), MIN_STAKE_PER_GPU);
        stakeToken = usd; // the fixture's _stake now stakes the payment token
    }

    /// @dev Issue 7.1's attack: 8 GPUs listed (800 tokens staked), a 1-GPU rental for one
    /// minute, and the renter's workload producing a fault of every kind in every window for a
    /// day. Before: each fault slashed 10 % of the whole stake again. Now: the IDLE_POWER_BUSY
    /// flags revert, the others take at most the rental's 100-token collateral in total.
    function test_slash_renterInducedFaultsNeverTakeMoreThanTheRentalsCollateral() public {
        uint256 offerId = _list(provider, 8, PRICE_PER_GPU_HOUR, PRICE_PER_KWH);
        uint256 rentalId = _open(renter, offerId, 1, 1e6);
        vm.prank(provider);
        market.startRental(rentalId);
        vm.warp(block.timestamp + 1 minutes);
        _settle(rentalId, 1, 60, 0);
        uint256 paid = _rental(rentalId).paid;
        uint32 faultId;
        for (uint256 hour = 0; hour < 24; hour++) {
            for (uint8 kind = 1; kind <= 7; kind++) {
                FaultReport memory fault = _fault(rentalId, faultId++, kind);
                bytes memory signatures = _signFault(fault);
                if (kind == IDLE_POWER_BUSY) {
                    vm.expectRevert(
                        abi.encodeWithSelector(IProviderStaking.ProviderStaking_FaultNotSlashable.selector, kind)
                    );
                } else if (_rental(rentalId).slashed == _rental(rentalId).collateral) {
                    vm.expectRevert(
                        abi.encodeWithSelector(IProviderStaking.ProviderStaking_NothingToSlash.selector, rentalId)
                    );
                }
                market.slash(fault, signatures);
            }
            vm.warp(block.timestamp + SLASH_WINDOW);
        }
        Rental memory r = _rental(rentalId);
        assertEq(r.collateral, MIN_STAKE_PER_GPU, "collateral of one GPU");
        assertEq(r.slashed, r.collateral, "at most the rental's collateral");
        assertEq(market.stakeOf(provider).active, 7 * MIN_STAKE_PER_GPU, "the other 7 GPUs' stake untouched");
        vm.prank(renter);
        market.endRental(rentalId);
        uint256 budget = r.budget;
        _finalizeAfterGrace(rentalId);
        // The renter got its refund and at most what the rental cost it: inducing faults never pays.
        assertEq(market.withdrawable(renter, address(usd)), budget - paid + paid, "refund + compensation capped at paid");
        assertLe(market.withdrawable(renter, address(usd)), budget, "renter receives no more than it deposited");
        assertEq(
            market.withdrawable(treasury, address(usd)),
            MIN_STAKE_PER_GPU - paid + paid * FEE_BPS / 10_000,
            "the excess of the slashes and the fee go to the treasury"
        );
    }

    function test_slash_RevertWhen_idlePowerBusy_theRentersWorkloadIsAUsageFlag() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        FaultReport memory fault = _fault(rentalId, 0, IDLE_POWER_BUSY);
        bytes memory signatures = _signFault(fault);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderStaking.ProviderStaking_FaultNotSlashable.selector, IDLE_POWER_BUSY)
        );
        market.slash(fault, signatures);
        assertEq(market.stakeOf(provider).active, MIN_STAKE_PER_GPU, "stake untouched");
    }

    function test_slash_RevertWhen_unknownFaultKind() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        FaultReport memory fault = _fault(rentalId, 0, 8);
        bytes memory signatures = _signFault(fault);
        vm.expectRevert(abi.encodeWithSelector(IProviderStaking.ProviderStaking_UnknownFaultKind.selector, 8));
        market.slash(fault, signatures);
    }

    function test_slash_eachKindOncePerWindow_nextWindowSlashesAgain() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        FaultReport memory first = _fault(rentalId, 0, DOWNTIME);
        market.slash(first, _signFault(first));
        FaultReport memory sameWindow = _fault(rentalId, 1, DOWNTIME);
        bytes memory signatures = _signFault(sameWindow);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderStaking.ProviderStaking_SlashWindowUsed.selector, rentalId, DOWNTIME, 0)
        );
        market.slash(sameWindow, signatures);
        FaultReport memory otherKind = _fault(rentalId, 2, 2);
        market.slash(otherKind, _signFault(otherKind));
        vm.warp(block.timestamp + SLASH_WINDOW);
        FaultReport memory nextWindow = _fault(rentalId, 3, DOWNTIME);
        market.slash(nextWindow, _signFault(nextWindow));
        assertEq(_rental(rentalId).slashed, 3 * MIN_STAKE_PER_GPU * SLASH_BPS / 10_000, "three slashes");
    }

    function test_slash_RevertWhen_observedOutsideTheRental() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        FaultReport memory early = _fault(rentalId, 0, DOWNTIME);
        early.observedAt = uint64(block.timestamp - 1);
        bytes memory signatures = _signFault(early);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderStaking.ProviderStaking_ObservedOutsideRental.selector, rentalId, early.observedAt
            )
        );
        market.slash(early, signatures);
        FaultReport memory future = _fault(rentalId, 1, DOWNTIME);
        future.observedAt = uint64(block.timestamp + 1);
        signatures = _signFault(future);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderStaking.ProviderStaking_ObservedOutsideRental.selector, rentalId, future.observedAt
            )
        );
        market.slash(future, signatures);
    }

    /// @dev Faults can still slash an Ended rental during its grace (the provider cannot escape
    /// by ending), not after it, and never a rental that did not start.
    function test_slash_endedRentalSlashableOnlyDuringItsGrace() public {
        uint256 offerId = _list(provider, 1, PRICE_PER_GPU_HOUR, 0);
        uint256 openId = _open(renter, offerId, 1, 1e6);
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        vm.warp(block.timestamp + 10 minutes);
        vm.prank(provider);
        market.endRental(rentalId);
        FaultReport memory fault = _fault(rentalId, 0, DOWNTIME);
        market.slash(fault, _signFault(fault));
        vm.warp(block.timestamp + SETTLEMENT_GRACE + 1);
        FaultReport memory late = _fault(rentalId, 1, 2);
        late.observedAt = _rental(rentalId).endedAt;
        bytes memory signatures = _signFault(late);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderStaking.ProviderStaking_RentalNotSlashable.selector, rentalId, uint8(RentalStatus.Ended)
            )
        );
        market.slash(late, signatures);
        FaultReport memory unstarted = _fault(openId, 0, DOWNTIME);
        signatures = _signFault(unstarted);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderStaking.ProviderStaking_RentalNotSlashable.selector, openId, uint8(RentalStatus.Open)
            )
        );
        market.slash(unstarted, signatures);
    }

    /// @dev The renter's share of slashes (60 %) is capped by what the rental cost it; with a
    /// large paid amount it gets the full share.
    function test_slash_renterCompensationCappedAtWhatTheRentalCost() public {
        uint256 rentalId = _activeRental(1, 360e6, 0, 1_000e6); // 360 tokens per GPU-hour
        vm.warp(block.timestamp + 10 minutes);
        _settle(rentalId, 1, 600, 0); // paid 60 tokens
        FaultReport memory fault = _fault(rentalId, 0, DOWNTIME);
        market.slash(fault, _signFault(fault)); // 10 tokens
        vm.prank(renter);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        uint256 slashed = MIN_STAKE_PER_GPU * SLASH_BPS / 10_000;
        uint256 share = slashed * RENTER_SLASH_SHARE_BPS / 10_000;
        assertEq(market.withdrawable(renter, address(usd)), 1_000e6 - 60e6 + share, "full share under the cap");
        assertEq(
            market.withdrawable(treasury, address(usd)), slashed - share + uint256(60e6) * FEE_BPS / 10_000, "treasury: rest"
        );
    }

    /// @dev With different stake and payment tokens the amounts are not comparable: the renter
    /// gets none of the slash, the treasury all of it.
    function test_slash_differentStakeToken_slashGoesToTheTreasury() public {
        TestStablecoin other = new TestStablecoin();
        vm.prank(governance);
        market.setStakeToken(address(other), MIN_STAKE_PER_GPU);
        stakeToken = other;
        uint256 rentalId = _activeRental(1, 360e6, 0, 1_000e6);
        vm.warp(block.timestamp + 10 minutes);
        _settle(rentalId, 1, 600, 0);
        FaultReport memory fault = _fault(rentalId, 0, DOWNTIME);
        market.slash(fault, _signFault(fault));
        vm.prank(renter);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        assertEq(market.withdrawable(renter, address(other)), 0, "renter: none across tokens");
        assertEq(market.withdrawable(treasury, address(other)), MIN_STAKE_PER_GPU * SLASH_BPS / 10_000, "treasury");
    }

    // ------------------------------------------------------------------ behaviour 3: collateral

    /// @dev Issue 7.3: the provider withdraws its offer and tries to unstake everything while a
    /// 30-day rental runs; the collateral is locked, a later fault still slashes, and the stake
    /// comes free only when the rental is finalized.
    function test_requestUnstake_RevertWhen_stakeIsLockedForARunningRental() public {
        uint256 rentalId = _activeRental(2, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.prank(provider);
        market.withdrawOffer(1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderStaking.ProviderStaking_InsufficientStake.selector, provider, 0, 2 * MIN_STAKE_PER_GPU
            )
        );
        vm.prank(provider);
        market.requestUnstake(2 * MIN_STAKE_PER_GPU);
        vm.warp(block.timestamp + 29 days);
        FaultReport memory fault = _fault(rentalId, 0, DOWNTIME);
        market.slash(fault, _signFault(fault));
        uint256 slashed = 2 * MIN_STAKE_PER_GPU * SLASH_BPS / 10_000;
        assertEq(_rental(rentalId).slashed, slashed, "a late fault still slashes");
        vm.prank(renter);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        Stake memory st = market.stakeOf(provider);
        assertEq(st.locked, 0, "released at finalization");
        vm.prank(provider);
        market.requestUnstake(st.active);
        assertEq(market.stakeOf(provider).unbonding, 2 * MIN_STAKE_PER_GPU - slashed, "the rest unbonds");
    }

    function test_startRental_RevertWhen_offerNoLongerListed() public {
        uint256 offerId = _list(provider, 1, PRICE_PER_GPU_HOUR, 0);
        uint256 rentalId = _open(renter, offerId, 1, 10e6);
        vm.prank(provider);
        market.withdrawOffer(offerId);
        vm.expectRevert(abi.encodeWithSelector(IOfferBook.OfferBook_OfferInactive.selector, offerId));
        vm.prank(provider);
        market.startRental(rentalId);
        // The renter gets its budget back without the provider.
        vm.prank(renter);
        market.cancelRental(rentalId);
        assertEq(market.withdrawable(renter, address(usd)), 10e6, "refund");
    }

    /// @dev Two 1-GPU rentals of a 1-GPU offer: the stake backs one; the second cannot start.
    function test_startRental_RevertWhen_freeStakeDoesNotCoverTheCollateral() public {
        uint256 offerId = _list(provider, 1, PRICE_PER_GPU_HOUR, 0);
        uint256 first = _open(renter, offerId, 1, 10e6);
        uint256 second = _open(renter, offerId, 1, 10e6);
        vm.startPrank(provider);
        market.startRental(first);
        vm.expectRevert(
            abi.encodeWithSelector(IRentalEscrow.RentalEscrow_CollateralUnavailable.selector, second, 0, MIN_STAKE_PER_GPU)
        );
        market.startRental(second);
        vm.stopPrank();
        _stake(provider, MIN_STAKE_PER_GPU);
        vm.prank(provider);
        market.startRental(second);
        assertEq(market.stakeOf(provider).locked, 2 * MIN_STAKE_PER_GPU, "both locked");
    }

    /// @dev A rental's duration is the lesser of the offer's and maxRentalDuration: anyone ends
    /// it then, so no collateral stays locked beyond maxRentalDuration + grace.
    function test_openRental_durationCappedByMaxRentalDuration() public {
        MarketParams memory p = _defaultParams();
        p.maxRentalDuration = 2 days;
        vm.prank(governance);
        market.setParams(p);
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6); // offer says 30 days
        assertEq(_rental(rentalId).maxDurationSeconds, 2 days, "capped");
        assertEq(market.rentalTerms(rentalId).maxDurationSeconds, 2 days, "terms capped");
        vm.warp(block.timestamp + 2 days);
        vm.prank(keeper);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        assertEq(market.stakeOf(provider).locked, 0, "unlocked");
    }

    function test_setParams_RevertWhen_unbondingDelayNotAboveMaxRentalDurationPlusGrace() public {
        MarketParams memory p = _defaultParams();
        p.unbondingDelay = MAX_RENTAL_DURATION + SETTLEMENT_GRACE;
        vm.expectRevert(abi.encodeWithSignature("GpuRentMarket_InvalidParam(string)", "unbondingDelay"));
        vm.prank(governance);
        market.setParams(p);
        p.unbondingDelay += 1;
        vm.prank(governance);
        market.setParams(p);
    }
}
