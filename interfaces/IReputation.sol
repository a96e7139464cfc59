// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Reputation} from "../contracts/types/DataTypes.sol";

/// @title IReputation
/// @notice Provider reputation from what settled on chain.
/// @dev Counters change only at finalization (fees paid, fees weighted by attested uptime and
/// challenges passed, completed or abandoned rental, attested GPU-seconds, challenge record) and
/// at slashing (count and amount).
/// docs/economics.md gives the formula and what it costs to move a score.
interface IReputation {
    /// @notice Emitted when a provider's counters change.
    event ReputationUpdated(address indexed provider, Reputation reputation);

    /// @notice The counters of `provider`.
    function reputationOf(address provider) external view returns (Reputation memory);

    /// @notice Score in 0..9999.
    /// @dev score = 10000 * deliveredFees / (feesPaid + abandonedCollateral + slashedAmount +
    /// reputationPrior) (integer division, floor), where deliveredFees sums, over completed
    /// rentals, fee * uptimeBps * challengeBps / 10^8 with uptimeBps = min(10000, 10000 *
    /// attested available GPU-seconds / (gpuCount * (endedAt - startedAt))) and challengeBps =
    /// 10000 * challengesPassed / (challengesPassed + challengesFailed) of the rental's last
    /// settled challenge record (10000 when none were judged): a failed or missed proof-of-GPU
    /// challenge lowers the rental's weight. A score is bought only with protocol fees: moving it
    /// from X to Y by self-rental costs at least the fees of docs/economics.md.
    function reputationScore(address provider) external view returns (uint256);
}
