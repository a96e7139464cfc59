// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Reputation} from "../contracts/types/DataTypes.sol";

/// @title IReputation
/// @notice Provider reputation from what settled on chain.
/// @dev Counters change only at finalization (completed or abandoned rental, attested
/// GPU-seconds, last attested uptime) and at slashing (slash count).
interface IReputation {
    /// @notice Emitted when a provider's counters change.
    event ReputationUpdated(address indexed provider, Reputation reputation);

    /// @notice The counters of `provider`.
    function reputationOf(address provider) external view returns (Reputation memory);

    /// @notice Score in 0..10000.
    /// @dev If reportedRentals == 0 the score is 0. Otherwise
    /// avgUptimeBps = uptimeBpsSum / reportedRentals and
    /// score = avgUptimeBps * completed / (completed + abandoned + 2 * slashCount + 1)
    /// (integer division, floor). The +1 is a prior: a provider earns its score with history.
    function reputationScore(address provider) external view returns (uint256);
}
