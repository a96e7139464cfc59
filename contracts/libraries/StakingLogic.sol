// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {Stake, Rental, RentalTerms, RentalStatus, Reputation, FaultReport} from "../types/DataTypes.sol";
import {IProviderStaking} from "../../interfaces/IProviderStaking.sol";
import {IRentalEscrow} from "../../interfaces/IRentalEscrow.sol";
import {IReputation} from "../../interfaces/IReputation.sol";

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
        // Check: what stays active covers the listed GPUs and the collateral locked for started,
        // unfinalized rentals (the larger of the two; the lock is part of the listed stake).
        if (amount == 0 || amount > active) revert IProviderStaking.ProviderStaking_InvalidAmount(amount);
        uint256 remaining = active - amount;
        uint256 required = minStakePerGpu * providerStake.listedGpus;
        if (providerStake.locked > required) required = providerStake.locked;
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

    /// @notice Pays the caller's whole unbonded stake to `to` (the caller, or an address it
    /// names).
    function completeUnstake(Stake storage providerStake, address to) external {
        uint256 amount = providerStake.unbonding;
        // Check:
        if (amount == 0 || block.timestamp < providerStake.unbondingReleaseAt) {
            revert IProviderStaking.ProviderStaking_NotUnbonded(amount, providerStake.unbondingReleaseAt);
        }
        if (to == address(0)) revert IProviderStaking.ProviderStaking_InvalidRecipient(to);
        address token = providerStake.token;
        // Effect:
        providerStake.unbonding = 0;
        emit IProviderStaking.Unstaked(msg.sender, token, amount);
        // Interaction:
        IERC20(token).safeTransfer(to, amount);
    }

    /// @notice Takes the slash of a verified fault report from the collateral the provider
    /// locked for the rental, after the per-rental bounds (IProviderStaking.slash), and records
    /// it in the provider's reputation. The amount stays in the contract, held for the rental,
    /// until finalization pays it out (RentalLogic.finalize).
    /// @param windowUsed The rental's (window << 8 | kind) flags.
    function slash(
        Rental storage rental,
        RentalTerms storage terms,
        Stake storage providerStake,
        mapping(uint256 windowKind => bool used) storage windowUsed,
        Reputation storage reputation,
        FaultReport calldata report
    ) external {
        uint256 rentalId = report.rentalId;
        // Check: the rental and the window (in _slashWindow), then the amount: slashBps of the
        // collateral, never beyond what is left of it; nothing to move -> revert.
        uint256 windowKind = _slashWindow(rental, terms, report);
        if (windowUsed[windowKind]) {
            revert IProviderStaking.ProviderStaking_SlashWindowUsed(rentalId, report.kind, windowKind >> 8);
        }
        uint256 collateral = rental.collateral;
        uint256 slashed = rental.slashed;
        uint256 amount = collateral * terms.slashBps / 10_000;
        if (amount > collateral - slashed) amount = collateral - slashed; // slashed <= collateral
        if (amount == 0) revert IProviderStaking.ProviderStaking_NothingToSlash(rentalId);

        // Effect: amount <= collateral - slashed <= locked <= active (the lock invariant), so
        // neither subtraction underflows, and the lock still covers what the rental has left.
        windowUsed[windowKind] = true;
        rental.slashed = uint96(slashed + amount); // <= collateral < 2**96
        providerStake.active -= uint96(amount);
        providerStake.locked -= uint96(amount);
        address provider = rental.provider;
        emit IProviderStaking.Slashed(provider, rentalId, report.faultId, report.kind, terms.stakeToken, amount);
        ++reputation.slashCount;
        reputation.slashedAmount += uint128(amount);
        emit IReputation.ReputationUpdated(provider, reputation);
    }

    /// @dev Reverts unless the rental is Active, or Ended within its settlement grace, and
    /// observedAt lies in [startedAt, end]; returns window << 8 | kind, where window =
    /// (observedAt - startedAt) / slashWindowSeconds (>= 60 by validateParams, never 0).
    function _slashWindow(Rental storage rental, RentalTerms storage terms, FaultReport calldata report)
        private
        view
        returns (uint256)
    {
        RentalStatus status = rental.status;
        uint256 end = block.timestamp;
        if (status == RentalStatus.Ended) {
            end = rental.endedAt;
            if (block.timestamp > end + terms.settlementGrace) {
                revert IProviderStaking.ProviderStaking_RentalNotSlashable(report.rentalId, uint8(status));
            }
        } else if (status != RentalStatus.Active) {
            revert IProviderStaking.ProviderStaking_RentalNotSlashable(report.rentalId, uint8(status));
        }
        uint256 startedAt = rental.startedAt;
        uint64 observedAt = report.observedAt;
        if (observedAt < startedAt || observedAt > end) {
            revert IProviderStaking.ProviderStaking_ObservedOutsideRental(report.rentalId, observedAt);
        }
        return (((observedAt - startedAt) / terms.slashWindowSeconds) << 8) | report.kind;
    }
}
