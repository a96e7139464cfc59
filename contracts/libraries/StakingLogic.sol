// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {Stake, Rental, FaultReport, MarketParams} from "../types/DataTypes.sol";
import {IProviderStaking} from "../../interfaces/IProviderStaking.sol";
import {IRentalEscrow} from "../../interfaces/IRentalEscrow.sol";

/// @title StakingLogic
/// @notice Stake, unstake-request and unstake logic of GpuRentMarket, deployed once as an
/// external library and reached by DELEGATECALL (GpuRentMarket's storage, events and
/// msg.sender).
/// @dev Why a library: see OfferLogic (EIP-170 code size). GpuRentMarket
/// verifies the oracle quorum of a fault report itself and calls `slash` here for the effects.
library StakingLogic {
    using SafeERC20 for IERC20;

    /// @notice Adds `amount` of `token` to the caller's stake (`providerStake`).
    function stake(Stake storage providerStake, bool tokenAllowed, address token, uint256 amount) external {
        // Check:
        if (!tokenAllowed) revert IProviderStaking.ProviderStaking_TokenNotAllowed(token);
        address current = providerStake.token;
        if (current != token) {
            if (current != address(0) && uint256(providerStake.active) + providerStake.unbonding != 0) {
                revert IProviderStaking.ProviderStaking_StakeTokenMismatch(current, token);
            }
            // Effect: an empty stake may switch token.
            providerStake.token = token;
        }
        uint256 active = uint256(providerStake.active) + amount;
        // active + unbonding stays within uint96, so moving stake into unbonding cannot overflow.
        if (amount == 0 || active + providerStake.unbonding > type(uint96).max) {
            revert IProviderStaking.ProviderStaking_InvalidAmount(amount);
        }
        // Effect:
        providerStake.active = uint96(active);
        emit IProviderStaking.Staked(msg.sender, token, amount, active);
        // Interaction: reverts (undoing the effect) if less than `amount` arrived.
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - before;
        if (received != amount) revert IRentalEscrow.RentalEscrow_TransferShortfall(token, amount, received);
    }

    /// @notice Moves `amount` of the caller's active stake into unbonding.
    function requestUnstake(Stake storage providerStake, uint256 minStakePerGpu, uint256 unbondingDelay, uint256 amount)
        external
    {
        uint256 active = providerStake.active;
        // Check:
        if (amount == 0 || amount > active) revert IProviderStaking.ProviderStaking_InvalidAmount(amount);
        uint256 remaining = active - amount;
        uint256 required = minStakePerGpu * providerStake.listedGpus;
        if (remaining < required) {
            revert IProviderStaking.ProviderStaking_InsufficientStake(msg.sender, remaining, required);
        }
        // Effect:
        uint256 unbonding = uint256(providerStake.unbonding) + amount;
        uint256 releaseAt = block.timestamp + unbondingDelay;
        providerStake.active = uint96(remaining);
        providerStake.unbonding = uint96(unbonding); // active + unbonding <= uint96 max (see stake)
        providerStake.unbondingReleaseAt = uint32(releaseAt);
        emit IProviderStaking.UnstakeRequested(msg.sender, amount, unbonding, releaseAt);
    }

    /// @notice Returns the caller's whole unbonded stake.
    function completeUnstake(Stake storage providerStake) external {
        uint256 amount = providerStake.unbonding;
        // Check:
        if (amount == 0 || block.timestamp < providerStake.unbondingReleaseAt) {
            revert IProviderStaking.ProviderStaking_NotUnbonded(amount, providerStake.unbondingReleaseAt);
        }
        address token = providerStake.token;
        // Effect:
        providerStake.unbonding = 0;
        emit IProviderStaking.Unstaked(msg.sender, token, amount);
        // Interaction:
        IERC20(token).safeTransfer(msg.sender, amount);
    }

    /// @notice Takes the slash of a verified fault report from the provider's stake (active
    /// first, then unbonding) and credits the renter's and treasury's shares.
    /// @dev The slash is floored first, then split; the treasury gets the remainder, so the
    /// shares add up to the slash exactly.
    // slither-disable-next-line divide-before-multiply
    function slash(
        Rental storage rental,
        Stake storage providerStake,
        mapping(address token => uint256 amount) storage minStakePerGpu,
        mapping(address account => mapping(address token => uint256 amount)) storage balances,
        MarketParams storage params,
        FaultReport calldata report
    ) external {
        address token = providerStake.token;
        uint256 active = providerStake.active;
        uint256 unbonding = providerStake.unbonding;
        uint256 amount = minStakePerGpu[token] * rental.gpuCount * params.slashBps / 10_000;
        if (amount > active + unbonding) amount = active + unbonding;
        // Effect:
        if (amount <= active) {
            providerStake.active = uint96(active - amount); // amount <= active
        } else {
            providerStake.active = 0;
            providerStake.unbonding = uint96(unbonding - (amount - active)); // amount <= active + unbonding
        }
        uint256 renterShare = amount * params.renterSlashShareBps / 10_000;
        uint256 treasuryShare = amount - renterShare;
        if (renterShare != 0) balances[rental.renter][token] += renterShare;
        if (treasuryShare != 0) balances[params.treasury][token] += treasuryShare;
        emit IProviderStaking.Slashed(
            rental.provider, report.rentalId, report.faultId, report.kind, token, renterShare, treasuryShare
        );
    }
}
