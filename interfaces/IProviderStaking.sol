// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Stake, FaultReport} from "../contracts/types/DataTypes.sol";

/// @title IProviderStaking
/// @notice Provider stakes (an allowed ERC-20), unbonding, and slashing from quorum-signed fault
/// reports.
/// @dev A provider must hold `active` stake of at least `minStakePerGpu(token) x listedGpus`
/// (GPUs in its active offers) to list offers and to have rentals opened. Unstaking moves stake
/// to `unbonding`, which stays slashable until `unbondingReleaseAt`.
interface IProviderStaking {
    /// @notice Emitted when a provider adds stake.
    event Staked(address indexed provider, address indexed token, uint256 amount, uint256 activeStake);
    /// @notice Emitted when a provider moves stake into unbonding.
    event UnstakeRequested(address indexed provider, uint256 amount, uint256 unbondingStake, uint256 releaseAt);
    /// @notice Emitted when unbonded stake is returned to the provider.
    event Unstaked(address indexed provider, address indexed token, uint256 amount);
    /// @notice Emitted when a fault report slashes a provider.
    /// @param renterShare Credited to the rental's renter (withdrawable, in the stake token).
    /// @param treasuryShare Credited to the treasury (withdrawable, in the stake token).
    event Slashed(
        address indexed provider,
        uint256 indexed rentalId,
        uint32 indexed faultId,
        uint8 kind,
        address token,
        uint256 renterShare,
        uint256 treasuryShare
    );

    /// @notice `token` is not an allowed stake token.
    error ProviderStaking_TokenNotAllowed(address token);
    /// @notice The provider already stakes another token (`current`); unstake it fully first.
    error ProviderStaking_StakeTokenMismatch(address current, address token);
    /// @notice Amount is zero or the stake would exceed uint96.
    error ProviderStaking_InvalidAmount(uint256 amount);
    /// @notice Active stake `active` is below the `required` stake for the listed GPUs.
    error ProviderStaking_InsufficientStake(address provider, uint256 active, uint256 required);
    /// @notice Nothing unbonding, or the unbonding delay ends at `releaseAt`.
    error ProviderStaking_NotUnbonded(uint256 unbonding, uint256 releaseAt);
    /// @notice Fault kind outside 1..4.
    error ProviderStaking_UnknownFaultKind(uint8 kind);
    /// @notice This (rentalId, faultId) already slashed.
    error ProviderStaking_FaultAlreadySettled(uint256 rentalId, uint32 faultId);
    /// @notice The rental never started (no provider service to fault).
    error ProviderStaking_RentalNotStarted(uint256 rentalId);

    /// @notice Stakes `amount` of `token` (allowed stake token) for the caller.
    /// @dev Refuses tokens that deliver less than `amount` (fee-on-transfer).
    function stake(address token, uint256 amount) external;

    /// @notice Moves `amount` of the caller's active stake into unbonding; restarts the
    /// unbonding timer for the whole unbonding amount.
    /// @dev The remaining active stake must still cover the caller's listed GPUs.
    function requestUnstake(uint256 amount) external;

    /// @notice Returns the caller's whole unbonding stake once the unbonding delay has passed.
    function completeUnstake() external;

    /// @notice Slashes the provider of `report.rentalId` for a quorum-signed fault.
    /// @dev Each (rentalId, faultId) settles once. Amount: `slashBps` of
    /// `minStakePerGpu(stakeToken) x rental.gpuCount`, capped by the provider's active plus
    /// unbonding stake (active first). `renterSlashShareBps` of it goes to the renter, the rest
    /// to the treasury, both as withdrawable balances. Callable by anyone.
    /// @param signatures Concatenated 65-byte signatures, ascending signer order (see IOracleQuorum).
    function slash(FaultReport calldata report, bytes calldata signatures) external;

    /// @notice The stake record of `provider`.
    function stakeOf(address provider) external view returns (Stake memory);

    /// @notice Active stake needed for `gpus` GPUs of `provider`'s stake token (0 if none chosen).
    function requiredStake(address provider, uint256 gpus) external view returns (uint256);

    /// @notice Whether (rentalId, faultId) has been slashed.
    function isFaultSettled(uint256 rentalId, uint32 faultId) external view returns (bool);

    /// @notice EIP-712 digest of a fault report under this contract's domain.
    function faultReportDigest(FaultReport calldata report) external view returns (bytes32);
}
