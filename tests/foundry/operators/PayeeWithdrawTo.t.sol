// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IRentalEscrow} from "../../../interfaces/IRentalEscrow.sol";
import {IProviderStaking} from "../../../interfaces/IProviderStaking.sol";
import {IOperatorRegistry} from "../../../interfaces/IOperatorRegistry.sol";
import {UsageReport, OfferTerms} from "../../../contracts/types/DataTypes.sol";
import {BlocklistToken} from "../../../contracts/test/BlocklistToken.sol";
import {OperatorFixture} from "../utils/OperatorFixture.sol";

/// @notice Issue 11: a payee that the token blocklists (USDC-style) takes its money out to an
/// address it names: the market's withdrawTo and completeUnstakeTo, the registry's withdrawTo and
/// completeUnbondTo. The old calls still pay the caller, and a blocked caller's still revert.
contract PayeeWithdrawToTest is OperatorFixture {
    BlocklistToken internal blk;
    address internal payout = address(0xFA11BAC);

    function setUp() public {
        _deployRegistry();
        blk = new BlocklistToken("Blocklist USD", "bUSD", 6);
        vm.startPrank(governance);
        market.setPaymentToken(address(blk), true);
        market.setStakeToken(address(blk), MIN_STAKE_PER_GPU);
        registry.setBondToken(address(blk), MIN_BOND);
        vm.stopPrank();
    }

    /// @dev A finalized 1-GPU rental paid in blk: returns the provider's credit.
    function _earnedInBlocklistToken() internal returns (uint256 credit) {
        _stake(provider, MIN_STAKE_PER_GPU);
        vm.prank(provider);
        uint256 offerId = market.createOffer(_blkTerms());
        uint256 budget = 100e6;
        blk.mint(renter, budget);
        vm.startPrank(renter);
        blk.approve(address(market), budget);
        uint256 rentalId = market.openRental(offerId, market.getOffer(offerId).version, 1, budget, bytes32(0));
        vm.stopPrank();
        vm.prank(provider);
        market.startRental(rentalId);
        vm.warp(block.timestamp + 1 hours);
        _settle(rentalId, 1, 3600, 0);
        vm.prank(renter);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        credit = market.withdrawable(provider, address(blk));
        assertGt(credit, 0, "provider credited");
    }

    function _blkTerms() internal view returns (OfferTerms memory terms) {
        terms = _terms(1, PRICE_PER_GPU_HOUR, 0);
        terms.paymentToken = address(blk);
    }

    // ------------------------------------------------------------------------------- market

    function test_withdrawTo_blocklistedProviderTakesItsBalanceToAnAddressItNames() public {
        uint256 credit = _earnedInBlocklistToken();
        blk.setBlocked(provider, true);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.BlocklistToken_Blocked.selector, provider));
        vm.prank(provider);
        market.withdraw(address(blk));

        vm.expectEmit(address(market));
        emit IRentalEscrow.Withdrawn(provider, address(blk), credit);
        vm.prank(provider);
        assertEq(market.withdrawTo(address(blk), payout), credit, "returned");
        assertEq(blk.balanceOf(payout), credit, "paid to the named address");
        assertEq(market.withdrawable(provider, address(blk)), 0, "balance spent");
    }

    function test_withdraw_stillPaysTheCaller() public {
        uint256 credit = _earnedInBlocklistToken();
        vm.prank(provider);
        assertEq(market.withdraw(address(blk)), credit, "returned");
        assertEq(blk.balanceOf(provider), credit, "paid to the caller");
    }

    function test_RevertWhen_withdrawTo_zeroAddress() public {
        _earnedInBlocklistToken();
        vm.expectRevert(abi.encodeWithSelector(IRentalEscrow.RentalEscrow_InvalidRecipient.selector, address(0)));
        vm.prank(provider);
        market.withdrawTo(address(blk), address(0));
    }

    function test_RevertWhen_withdrawTo_nothingToWithdraw() public {
        vm.expectRevert(
            abi.encodeWithSelector(IRentalEscrow.RentalEscrow_NothingToWithdraw.selector, provider, address(blk))
        );
        vm.prank(provider);
        market.withdrawTo(address(blk), payout);
    }

    function test_completeUnstakeTo_blocklistedProviderUnstakesToAnAddressItNames() public {
        uint256 amount = 3 * MIN_STAKE_PER_GPU;
        _stakeBlk(provider, amount);
        vm.prank(provider);
        market.requestUnstake(amount);
        vm.warp(block.timestamp + UNBONDING_DELAY);
        blk.setBlocked(provider, true);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.BlocklistToken_Blocked.selector, provider));
        vm.prank(provider);
        market.completeUnstake();

        vm.expectEmit(address(market));
        emit IProviderStaking.Unstaked(provider, address(blk), amount);
        vm.prank(provider);
        market.completeUnstakeTo(payout);
        assertEq(blk.balanceOf(payout), amount, "paid to the named address");
        assertEq(market.stakeOf(provider).unbonding, 0, "unbonding spent");
    }

    function test_RevertWhen_completeUnstakeTo_zeroAddress() public {
        _stakeBlk(provider, MIN_STAKE_PER_GPU);
        vm.prank(provider);
        market.requestUnstake(MIN_STAKE_PER_GPU);
        vm.warp(block.timestamp + UNBONDING_DELAY);
        vm.expectRevert(abi.encodeWithSelector(IProviderStaking.ProviderStaking_InvalidRecipient.selector, address(0)));
        vm.prank(provider);
        market.completeUnstakeTo(address(0));
    }

    function test_RevertWhen_completeUnstakeTo_beforeTheDelay() public {
        _stakeBlk(provider, MIN_STAKE_PER_GPU);
        vm.prank(provider);
        market.requestUnstake(MIN_STAKE_PER_GPU);
        uint256 releaseAt = block.timestamp + UNBONDING_DELAY;
        vm.expectRevert(
            abi.encodeWithSelector(IProviderStaking.ProviderStaking_NotUnbonded.selector, MIN_STAKE_PER_GPU, releaseAt)
        );
        vm.prank(provider);
        market.completeUnstakeTo(payout);
    }

    function _stakeBlk(address who, uint256 amount) internal {
        blk.mint(who, amount);
        vm.startPrank(who);
        blk.approve(address(market), amount);
        market.stake(address(blk), amount);
        vm.stopPrank();
    }

    // ----------------------------------------------------------------------------- registry

    /// @dev An operator outside the signer set, bonded in blk, equivocates; `prover` earns its
    /// reward in blk.
    function _proverRewardInBlocklistToken() internal returns (uint256 reward, address operator) {
        uint256 key = 0xB0D5;
        operator = vm.addr(key);
        blk.mint(operator, MIN_BOND);
        vm.startPrank(operator);
        blk.approve(address(registry), MIN_BOND);
        registry.bond(address(blk), MIN_BOND);
        vm.stopPrank();
        UsageReport memory a = _report(7, 3, 600, 1_000_000);
        UsageReport memory b = _report(7, 3, 600, 2_000_000);
        bytes memory sigA = _signAs(key, a);
        bytes memory sigB = _signAs(key, b);
        vm.prank(prover);
        registry.proveEquivocation(a, sigA, b, sigB);
        reward = registry.balanceOf(prover, address(blk));
        assertGt(reward, 0, "prover rewarded");
    }

    function test_registryWithdrawTo_blocklistedPayeeTakesItsBalanceToAnAddressItNames() public {
        (uint256 reward,) = _proverRewardInBlocklistToken();
        blk.setBlocked(prover, true);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.BlocklistToken_Blocked.selector, prover));
        vm.prank(prover);
        registry.withdraw(address(blk));

        vm.expectEmit(address(registry));
        emit IOperatorRegistry.Withdrawn(prover, address(blk), reward);
        vm.prank(prover);
        assertEq(registry.withdrawTo(address(blk), payout), reward, "returned");
        assertEq(blk.balanceOf(payout), reward, "paid to the named address");
        assertEq(registry.balanceOf(prover, address(blk)), 0, "balance spent");
    }

    function test_RevertWhen_registryWithdrawTo_zeroAddress() public {
        _proverRewardInBlocklistToken();
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_InvalidRecipient.selector, address(0))
        );
        vm.prank(prover);
        registry.withdrawTo(address(blk), address(0));
    }

    function test_completeUnbondTo_blocklistedOperatorUnbondsToAnAddressItNames() public {
        (, address operator) = _proverRewardInBlocklistToken();
        uint256 left = registry.bondOf(operator).active;
        vm.prank(operator);
        registry.requestUnbond(left);
        vm.warp(block.timestamp + OP_UNBONDING_DELAY);
        blk.setBlocked(operator, true);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.BlocklistToken_Blocked.selector, operator));
        vm.prank(operator);
        registry.completeUnbond();

        vm.prank(operator);
        assertEq(registry.completeUnbondTo(payout), left, "returned");
        assertEq(blk.balanceOf(payout), left, "paid to the named address");
        assertEq(registry.totalBonded(address(blk)), 0, "nothing bonded");
    }

    function test_RevertWhen_completeUnbondTo_zeroAddress() public {
        (, address operator) = _proverRewardInBlocklistToken();
        uint256 left = registry.bondOf(operator).active;
        vm.prank(operator);
        registry.requestUnbond(left);
        vm.warp(block.timestamp + OP_UNBONDING_DELAY);
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_InvalidRecipient.selector, address(0))
        );
        vm.prank(operator);
        registry.completeUnbondTo(address(0));
    }
}
