// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Stake} from "../types/DataTypes.sol";
import {IOfferBook} from "../../interfaces/IOfferBook.sol";
import {IProviderStaking} from "../../interfaces/IProviderStaking.sol";

/// @title StakeGuard
/// @notice The one check that a provider's stake backs its listed GPUs, shared by listing an
/// offer (OfferLogic) and opening a rental of one (RentalLogic).
library StakeGuard {
    /// @notice Reverts unless `provider` has chosen a stake token, the token is still allowed and
    /// its active stake is at least `minStakePerGpu` x `gpus`.
    /// @param token The provider's stake token (providerStake.token, read by the caller).
    /// @param stakeTokenAllowed Whether `token` is (still) allowed.
    function requireStakeCovers(
        Stake storage providerStake,
        address token,
        address provider,
        bool stakeTokenAllowed,
        uint256 minStakePerGpu,
        uint256 gpus
    ) internal view {
        if (token != address(0) && !stakeTokenAllowed) revert IOfferBook.OfferBook_StakeTokenNotAllowed(token);
        uint256 required = minStakePerGpu * gpus;
        uint256 active = providerStake.active;
        if (token == address(0) || active < required) {
            revert IProviderStaking.ProviderStaking_InsufficientStake(provider, active, required);
        }
    }
}
