// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {MarketParams} from "../contracts/types/DataTypes.sol";
import {IOracleQuorum} from "./IOracleQuorum.sol";
import {IProviderStaking} from "./IProviderStaking.sol";
import {IOfferBook} from "./IOfferBook.sol";
import {IRentalEscrow} from "./IRentalEscrow.sol";
import {IUsageSettlement} from "./IUsageSettlement.sol";
import {IReputation} from "./IReputation.sol";

/// @title IGpuRentMarket
/// @notice The single deployed gpurent contract: escrow, settlement, staking, slashing,
/// reputation and the oracle signer set (so settlement makes no external calls).
/// @dev Roles (OpenZeppelin AccessControl): DEFAULT_ADMIN_ROLE grants roles; GOVERNANCE_ROLE =
/// keccak256("GOVERNANCE_ROLE") sets the signer set, parameters and token allowlists.
/// EIP-712 domain: name "gpurent", version "1".
interface IGpuRentMarket is
    IUsageSettlement,
    IRentalEscrow,
    IOfferBook,
    IProviderStaking,
    IOracleQuorum,
    IReputation
{
    /// @notice Emitted when governance changes parameters.
    event ParamsUpdated(MarketParams params);
    /// @notice Emitted when a payment token is allowed or disallowed.
    event PaymentTokenSet(address indexed token, bool allowed);
    /// @notice Emitted when a stake token is allowed (minStakePerGpu > 0) or disallowed (0).
    event StakeTokenSet(address indexed token, uint256 minStakePerGpu);

    /// @notice A parameter is out of range (`field` names it).
    error GpuRentMarket_InvalidParam(string field);

    /// @notice Sets all parameters. Only GOVERNANCE_ROLE.
    /// @dev Limits: treasury non-zero; protocolFeeBps <= 1000; renterSlashShareBps <= 10000;
    /// slashBps <= 10000; every timeout > 0.
    function setParams(MarketParams calldata params) external;

    /// @notice Allows or disallows a payment token. Only GOVERNANCE_ROLE.
    function setPaymentToken(address token, bool allowed) external;

    /// @notice Allows a stake token with its minimum stake per GPU, or disallows it with 0.
    /// Only GOVERNANCE_ROLE. Existing stakes can always be unstaked.
    function setStakeToken(address token, uint256 minStakePerGpu) external;

    /// @notice Current parameters.
    function params() external view returns (MarketParams memory);

    /// @notice Whether `token` is an allowed payment token.
    function isPaymentToken(address token) external view returns (bool);

    /// @notice Minimum stake per GPU of `token` (0 = not an allowed stake token).
    function minStakePerGpu(address token) external view returns (uint256);

    /// @notice keccak256("GOVERNANCE_ROLE").
    function GOVERNANCE_ROLE() external view returns (bytes32);
}
