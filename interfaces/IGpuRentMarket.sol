// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {MarketParams, GpuModelSpec} from "../contracts/types/DataTypes.sol";
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
/// keccak256("GOVERNANCE_ROLE") sets the signer set, parameters, GPU model table and token
/// allowlists. Deployments give both roles to an OpenZeppelin TimelockController (proposer a
/// multisig) and the deployer none, so every change waits the timelock's delay in public.
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
    /// @notice Emitted when a GPU model is registered, changed or removed (powerLimitW 0).
    event GpuModelSet(bytes32 indexed model, uint16 powerLimitW, uint32 memoryMib);
    /// @notice Emitted when governance links the OperatorRegistry (0: none) and sets its share of
    /// each protocol fee.
    event OperatorRegistrySet(address indexed registry, uint16 feeShareBps);

    /// @notice A parameter is out of range (`field` names it).
    error GpuRentMarket_InvalidParam(string field);

    /// @notice Sets all parameters. Only GOVERNANCE_ROLE. Rentals already open keep the terms
    /// they snapshotted (RentalTerms).
    /// @dev Limits (GpuRentMarket_InvalidParam names the first one broken): treasury non-zero;
    /// protocolFeeBps <= 1000; renterSlashShareBps <= 10000; slashBps <= 5000; startTimeout,
    /// silenceTimeout and settlementGrace in [60 s, 7 days]; maxRentalDuration in [1 hour,
    /// 180 days]; slashWindowSeconds in [60 s, 1 day]; unbondingDelay above maxRentalDuration +
    /// settlementGrace and at most 400 days; reputationPrior non-zero.
    function setParams(MarketParams calldata params) external;

    /// @notice Registers, changes or (powerLimitW 0) removes a GPU model of the table offers
    /// must use. Only GOVERNANCE_ROLE. Open rentals keep the values they snapshotted.
    /// @dev Limits: powerLimitW <= 5000; memoryMib non-zero when registering.
    function setGpuModel(bytes32 model, uint16 powerLimitW, uint32 memoryMib) external;

    /// @notice Links the OperatorRegistry (contracts/operators) and its share of each protocol
    /// fee. Only GOVERNANCE_ROLE. With a registry, finalizeRental credits
    /// floor(fee x feeShareBps / 10000) to the registry's withdrawable balance (the rest to the
    /// treasury) and setSignerSet requires `isBonded` of every signer; registry 0 turns both off.
    /// @dev Limits: feeShareBps <= 10000, and 0 without a registry. The split applies to rentals
    /// finalized after the change (it moves money between treasury and operators only).
    function setOperatorRegistry(address registry, uint16 feeShareBps) external;

    /// @notice The linked OperatorRegistry (0: none) and its share of each protocol fee (bps).
    function operatorRegistry() external view returns (address registry, uint16 feeShareBps);

    /// @notice The table row of `model` (powerLimitW 0 = not registered).
    function gpuModelOf(bytes32 model) external view returns (GpuModelSpec memory);

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
