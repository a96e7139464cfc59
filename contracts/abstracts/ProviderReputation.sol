// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Reputation} from "../types/DataTypes.sol";
import {IReputation} from "../../interfaces/IReputation.sol";
import {MarketStorage} from "./MarketStorage.sol";

/// @title ProviderReputation
/// @notice Reputation counters from finalized rentals and slashes.
/// @dev NOTE: counters are as honest as the oracle quorum; a provider can also inflate
/// `completedRentals` by renting its own offers (it pays the protocol fee to do so).
abstract contract ProviderReputation is IReputation, MarketStorage {
    /// @inheritdoc IReputation
    function reputationOf(address provider) external view returns (Reputation memory) {
        return _reputations[provider];
    }

    /// @inheritdoc IReputation
    /// @dev The average is floored first on purpose: the formula is documented in integers.
    // slither-disable-next-line divide-before-multiply
    function reputationScore(address provider) external view returns (uint256) {
        Reputation memory rep = _reputations[provider];
        if (rep.reportedRentals == 0) return 0;
        uint256 avgUptimeBps = uint256(rep.uptimeBpsSum) / rep.reportedRentals;
        uint256 denominator =
            uint256(rep.completedRentals) + rep.abandonedRentals + 2 * uint256(rep.slashCount) + 1;
        return avgUptimeBps * rep.completedRentals / denominator;
    }

    /// @dev Records a finalized rental.
    function _recordFinalized(
        address provider,
        bool abandoned,
        bool reported,
        uint256 availableGpuSeconds,
        uint256 uptimeBps
    ) internal {
        Reputation storage rep = _reputations[provider];
        if (abandoned) ++rep.abandonedRentals;
        else ++rep.completedRentals;
        if (reported) {
            ++rep.reportedRentals;
            rep.uptimeBpsSum += uint64(uptimeBps); // uptimeBps <= 10000 (checked at settlement)
        }
        rep.attestedGpuSeconds += uint64(availableGpuSeconds); // stored as uint40
        _emitReputation(provider);
    }

    /// @dev Records a slash.
    function _recordSlash(address provider) internal {
        Reputation storage rep = _reputations[provider];
        ++rep.slashCount;
        _emitReputation(provider);
    }

    /// @dev One copy of the event's encoding (code size).
    function _emitReputation(address provider) private {
        emit ReputationUpdated(provider, _reputations[provider]);
    }
}
