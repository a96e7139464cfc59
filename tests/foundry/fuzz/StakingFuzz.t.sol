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

    struct SlashCase {
        uint256 rentalId;
        uint256 activeBefore;
        uint256 unbondingBefore;
        uint256 expected;
        uint256 slashed;
    }

    /// @dev A slash takes min(slashBps x minStakePerGpu x gpuCount, active + unbonding), active
    /// first; renter share + treasury share == slashed <= stake; each fault settles once.
    function testFuzz_slash_splitsExactlyAndOnce(
        uint16 slashBps,
        uint16 renterShareBps,
        uint16 gpuCount,
        uint256 extraStake,
        uint256 unbondPart,
        uint32 faultId,
        uint8 kind
    ) public {
        MarketParams memory p = _defaultParams();
        p.slashBps = uint16(bound(slashBps, 0, 10_000));
        p.renterSlashShareBps = uint16(bound(renterShareBps, 0, 10_000));
        vm.prank(governance);
        market.setParams(p);
        gpuCount = uint16(bound(gpuCount, 1, 16));
        SlashCase memory c;
        c.rentalId = _activeRental(gpuCount, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        _prepareStake(extraStake, unbondPart);
        Stake memory st = market.stakeOf(provider);
        (c.activeBefore, c.unbondingBefore) = (st.active, st.unbonding);

        FaultReport memory fault = _fault(c.rentalId, faultId, uint8(bound(kind, 1, 4)));
        bytes memory signatures = _signFault(fault);
        vm.prank(keeper);
        market.slash(fault, signatures);

        c.expected = MIN_STAKE_PER_GPU * gpuCount * p.slashBps / 10_000;
        if (c.expected > c.activeBefore + c.unbondingBefore) c.expected = c.activeBefore + c.unbondingBefore;
        _checkSlash(c, p.renterSlashShareBps);
        assertTrue(market.isFaultSettled(c.rentalId, faultId), "fault settled");
        assertEq(market.reputationOf(provider).slashCount, 1, "slash counted");

        vm.expectRevert(
            abi.encodeWithSelector(IProviderStaking.ProviderStaking_FaultAlreadySettled.selector, c.rentalId, faultId)
        );
        market.slash(fault, signatures);
    }

    /// @dev The provider withdraws its offer, adds `extraStake` and moves part into unbonding.
    function _prepareStake(uint256 extraStake, uint256 unbondPart) internal {
        vm.prank(provider);
        market.withdrawOffer(1);
        extraStake = bound(extraStake, 0, 1e12);
        if (extraStake != 0) _stake(provider, extraStake);
        unbondPart = bound(unbondPart, 0, market.stakeOf(provider).active);
        if (unbondPart != 0) {
            vm.prank(provider);
            market.requestUnstake(unbondPart);
        }
    }

    function _checkSlash(SlashCase memory c, uint16 renterShareBps) internal view {
        Stake memory afterSlash = market.stakeOf(provider);
        uint256 total = c.activeBefore + c.unbondingBefore;
        c.slashed = total - (uint256(afterSlash.active) + afterSlash.unbonding);
        assertEq(c.slashed, c.expected, "slashed amount");
        assertLe(c.slashed, total, "slashed <= stake");
        if (c.expected <= c.activeBefore) {
            assertEq(afterSlash.unbonding, c.unbondingBefore, "active is taken first");
        } else {
            assertEq(afterSlash.active, 0, "active exhausted before unbonding");
        }
        uint256 renterPart = market.withdrawable(renter, address(stakeToken));
        uint256 treasuryPart = market.withdrawable(treasury, address(stakeToken));
        assertEq(renterPart, c.slashed * renterShareBps / 10_000, "renter share");
        assertEq(renterPart + treasuryPart, c.slashed, "renter + treasury == slashed");
        assertEq(
            stakeToken.balanceOf(address(market)),
            uint256(afterSlash.active) + afterSlash.unbonding + renterPart + treasuryPart,
            "stake token fully accounted"
        );
    }

    /// @dev Unstake racing a slash: stake requested for unbonding stays slashable until released,
    /// and the provider can only complete what is left.
    function testFuzz_slash_reachesUnbondingStake(uint256 waitBeforeSlash) public {
        MarketParams memory p = _defaultParams();
        p.slashBps = 10_000; // slash the whole per-GPU minimum
        vm.prank(governance);
        market.setParams(p);
        uint256 rentalId = _activeRental(2, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 100e6);
        vm.startPrank(provider);
        market.withdrawOffer(1);
        market.requestUnstake(MIN_STAKE_PER_GPU * 2); // everything into unbonding
        vm.stopPrank();
        waitBeforeSlash = bound(waitBeforeSlash, 0, UNBONDING_DELAY - 1);
        vm.warp(block.timestamp + waitBeforeSlash);
        FaultReport memory fault = _fault(rentalId, 0, 1);
        market.slash(fault, _signFault(fault));
        Stake memory st = market.stakeOf(provider);
        assertEq(st.active, 0, "no active stake");
        assertEq(st.unbonding, 0, "unbonding stake slashed in full");
        vm.warp(block.timestamp + UNBONDING_DELAY);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderStaking.ProviderStaking_NotUnbonded.selector, 0, st.unbondingReleaseAt)
        );
        vm.prank(provider);
        market.completeUnstake();
        assertEq(market.getRental(rentalId).status == RentalStatus.Active, true, "rental unaffected");
    }
}
