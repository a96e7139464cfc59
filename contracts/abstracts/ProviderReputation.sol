// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Reputation, REPUTATION_LAYOUT} from "../types/DataTypes.sol";
import {IReputation} from "../../interfaces/IReputation.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {RentalLogic} from "../libraries/RentalLogic.sol";
import {PackedView} from "../libraries/PackedView.sol";

/// @title ProviderReputation
/// @notice Reputation counters from finalized rentals and slashes.
/// @dev Counters are written by RentalLogic.finalize and StakingLogic.slash.
/// NOTE: counters are as honest as the oracle quorum. A provider can raise its score by renting
/// its own offers, but only by paying protocol fees: the score is denominated in fees
/// (docs/economics.md gives the cost of each move). Fees, abandoned collateral and slashed
/// amounts are added in token units: the formula assumes payment and stake tokens of equal unit
/// value (governance allowlists stablecoins of the same decimals).
abstract contract ProviderReputation is IReputation, MarketStorage {
    /// @inheritdoc IReputation
    function reputationOf(address provider) external view returns (Reputation memory) {
        uint256 slot;
        assembly ("memory-safe") {
            slot := _reputations.slot
        }
        PackedView.returnUnpacked(PackedView.at(slot, uint256(uint160(provider))), REPUTATION_LAYOUT);
    }

    /// @inheritdoc IReputation
    function reputationScore(address provider) external view returns (uint256) {
        return RentalLogic.score(_reputations[provider], _params.reputationPrior);
    }
}
