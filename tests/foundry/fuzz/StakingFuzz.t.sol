// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Stake, MarketParams, FaultReport, RentalStatus} from "../../../contracts/types/DataTypes.sol";
import {IProviderStaking} from "../../../interfaces/IProviderStaking.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";

/// @notice Staking, unbonding and slashing arithmetic under random amounts and parameters.
contract StakingFuzzTest is MarketFixture {
    uint256 internal constant MAX_STAKE = 1e18; // inside uint96 (~7.9e28)

    function setUp() public {
        _deployMarket();
    }

    /// @dev stake -> requestUnstake -> completeUnstake moves exactly the amounts asked, keeps the
    /// listed GPUs covered, and returns the unbonded stake only after the delay.
    function testFuzz_stakeUnbondComplete_conservesAmounts(
        uint256 stakeAmount,
        uint16 listedGpus,
        uint256 unstakeAmount,
        uint256 earlyBy
    ) public {
        listedGpus = uint16(bound(listedGpus, 0, 64));
        uint256 required = MIN_STAKE_PER_GPU * listedGpus;
        stakeAmount = bound(stakeAmount, required == 0 ? 1 : required, MAX_STAKE);
        _stake(provider, stakeAmount);
        if (listedGpus != 0) {
            vm.prank(provider);
            market.createOffer(_terms(listedGpus, PRICE_PER_GPU_HOUR, 0));
        }
        assertEq(market.requiredStake(provider, listedGpus), required, "requiredStake");

        uint256 free = stakeAmount - required;
        if (free == 0) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IProviderStaking.ProviderStaking_InsufficientStake.selector, provider, required - 1, required
                )
            );
            vm.prank(provider);
            market.requestUnstake(1);
            return;
        }
        unstakeAmount = bound(unstakeAmount, 1, free);
        vm.prank(provider);
        market.requestUnstake(unstakeAmount);
        Stake memory st = market.stakeOf(provider);
        assertEq(st.active, stakeAmount - unstakeAmount, "active");
        assertEq(st.unbonding, unstakeAmount, "unbonding");
        assertEq(st.unbondingReleaseAt, block.timestamp + UNBONDING_DELAY, "releaseAt");
        assertGe(st.active, required, "listed GPUs stay covered");

        earlyBy = bound(earlyBy, 1, UNBONDING_DELAY);
        vm.warp(st.unbondingReleaseAt - earlyBy);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderStaking.ProviderStaking_NotUnbonded.selector, unstakeAmount, st.unbondingReleaseAt
            )
        );
        vm.prank(provider);
        market.completeUnstake();

        vm.warp(st.unbondingReleaseAt);
        vm.prank(provider);
        market.completeUnstake();
        assertEq(stakeToken.balanceOf(provider), unstakeAmount, "provider got the unbonded stake");
        assertEq(stakeToken.balanceOf(address(market)), stakeAmount - unstakeAmount, "market keeps the rest");
        assertEq(market.stakeOf(provider).unbonding, 0, "nothing unbonding");
    }

    /// @dev Unstaking more than the free stake is refused with the values that failed.
    function testFuzz_requestUnstake_cannotUncoverListedGpus(uint16 listedGpus, uint256 extra, uint256 excess) public {
        listedGpus = uint16(bound(listedGpus, 1, 64));
        extra = bound(extra, 0, 1e12);
        uint256 required = MIN_STAKE_PER_GPU * listedGpus;
        _stake(provider, required + extra);
        vm.prank(provider);
        market.createOffer(_terms(listedGpus, PRICE_PER_GPU_HOUR, 0));
        excess = bound(excess, 1, required);
        uint256 amount = extra + excess;
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderStaking.ProviderStaking_InsufficientStake.selector, provider, required - excess, required
            )
        );
        vm.prank(provider);
        market.requestUnstake(amount);
    }

    /// @dev A second request restarts the timer for the whole unbonding amount.
    function testFuzz_requestUnstake_restartsTimerForWholeAmount(uint256 a, uint256 b, uint256 gap) public {
        a = bound(a, 1, 1e12);
        b = bound(b, 1, 1e12);
        gap = bound(gap, 0, UNBONDING_DELAY * 2);
        _stake(provider, a + b);
        vm.prank(provider);
        market.requestUnstake(a);
        vm.warp(block.timestamp + gap);
        vm.prank(provider);
        market.requestUnstake(b);
        Stake memory st = market.stakeOf(provider);
        assertEq(st.unbonding, a + b, "unbonding sums");
        assertEq(st.unbondingReleaseAt, block.timestamp + UNBONDING_DELAY, "timer restarted");
    }

    /// @dev A slash takes the rental's slashBps of its own collateral (collateralPerGpu x
    /// gpuCount, fixed at open), capped by what is left of it, out of the provider's locked stake;
    /// unbonding stake and other rentals' collateral are untouched; the amount is held until
    /// finalization; each fault settles once; a slash that would move nothing reverts.
    function testFuzz_slash_takesSlashBpsOfTheRentalsCollateralOnce(
        uint16 slashBps,
        uint16 gpuCount,
        uint256 extraStake,
        uint32 faultId,
        uint8 kind
    ) public {
        MarketParams memory p = _defaultParams();
        p.slashBps = uint16(bound(slashBps, 0, 5000));
        vm.prank(governance);
        market.setParams(p);
        gpuCount = uint16(bound(gpuCount, 1, 16));
        uint256 rentalId = _activeRental(gpuCount, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        extraStake = bound(extraStake, 0, 1e12);
        if (extraStake != 0) _stake(provider, extraStake);
        Stake memory before = market.stakeOf(provider);
        uint256 collateral = MIN_STAKE_PER_GPU * gpuCount;
        assertEq(before.locked, collateral, "collateral locked at start");
        kind = uint8(bound(kind, 1, 7));
        if (kind == 4) kind = 1;
        FaultReport memory fault = _fault(rentalId, faultId, kind);
        bytes memory signatures = _signFault(fault);
        uint256 expected = collateral * p.slashBps / 10_000;
        if (expected == 0) {
            vm.expectRevert(abi.encodeWithSelector(IProviderStaking.ProviderStaking_NothingToSlash.selector, rentalId));
            market.slash(fault, signatures);
            return;
        }
        vm.prank(keeper);
        market.slash(fault, signatures);
        Stake memory afterSlash = market.stakeOf(provider);
        assertEq(afterSlash.active, uint256(before.active) - expected, "active - slash");
        assertEq(afterSlash.locked, collateral - expected, "lock shrinks by the slash");
        assertEq(market.getRental(rentalId).slashed, expected, "held for the rental");
        assertEq(market.withdrawable(renter, address(stakeToken)), 0, "nothing credited before finalization");
        assertEq(market.withdrawable(treasury, address(stakeToken)), 0, "nothing credited before finalization");
        assertTrue(market.isFaultSettled(rentalId, faultId), "fault settled");
        assertEq(market.reputationOf(provider).slashCount, 1, "slash counted");
        assertEq(market.reputationOf(provider).slashedAmount, expected, "slash amount counted");
        assertEq(
            stakeToken.balanceOf(address(market)),
            uint256(afterSlash.active) + afterSlash.unbonding + expected,
            "stake token fully accounted"
        );
        vm.expectRevert(
            abi.encodeWithSelector(IProviderStaking.ProviderStaking_FaultAlreadySettled.selector, rentalId, faultId)
        );
        market.slash(fault, signatures);
    }

    /// @dev Collateral locked for a running rental cannot be unstaked, even with the offer
    /// withdrawn; only stake above it can, and it stays slashable until finalization.
    function testFuzz_requestUnstake_neverReachesLockedCollateral(uint16 gpuCount, uint256 extraStake, uint256 ask)
        public
    {
        gpuCount = uint16(bound(gpuCount, 1, 16));
        uint256 rentalId = _activeRental(gpuCount, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        extraStake = bound(extraStake, 0, 1e12);
        if (extraStake != 0) _stake(provider, extraStake);
        vm.prank(provider);
        market.withdrawOffer(1);
        Stake memory st = market.stakeOf(provider);
        uint256 free = uint256(st.active) - st.locked;
        ask = bound(ask, 1, st.active);
        if (ask > free) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IProviderStaking.ProviderStaking_InsufficientStake.selector, provider, st.active - ask, st.locked
                )
            );
            vm.prank(provider);
            market.requestUnstake(ask);
            ask = free;
            if (ask == 0) return;
        }
        vm.prank(provider);
        market.requestUnstake(ask);
        assertEq(market.stakeOf(provider).active, st.locked + free - ask, "only free stake left");
        assertGe(market.stakeOf(provider).active, market.stakeOf(provider).locked, "lock still covered");
        FaultReport memory fault = _fault(rentalId, 0, 1);
        market.slash(fault, _signFault(fault));
        assertEq(market.getRental(rentalId).slashed, MIN_STAKE_PER_GPU * gpuCount * SLASH_BPS / 10_000, "slashable");
    }
}
