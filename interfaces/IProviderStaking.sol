// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Stake, FaultReport} from "../contracts/types/DataTypes.sol";

/// @title IProviderStaking
/// @notice Provider stakes (an allowed ERC-20), unbonding, and slashing from quorum-signed fault
/// reports.
/// @dev A provider must hold `active` stake of at least `minStakePerGpu(token) x listedGpus`
/// (GPUs in its active offers) to list offers and to have rentals opened. Starting a rental
/// locks `collateralPerGpu x gpuCount` of the active stake (`locked`) until the rental is
/// finalized; only `active - max(locked, minStakePerGpu x listedGpus)` can be unstaked.
/// Slashing is bounded per rental: each fault takes `slashBps` of that rental's collateral, each
/// fault kind at most once per `slashWindowSeconds` window of the rental, and all faults of a
/// rental together at most its collateral. IDLE_POWER_BUSY (4) is a usage flag of the renter's
/// workload and never slashes.
interface IProviderStaking {
    /// @notice Emitted when a provider adds stake.
    event Staked(address indexed provider, address indexed token, uint256 amount, uint256 activeStake);
    /// @notice Emitted when a provider moves stake into unbonding.
    event UnstakeRequested(address indexed provider, uint256 amount, uint256 unbondingStake, uint256 releaseAt);
    /// @notice Emitted when unbonded stake is returned to the provider.
    event Unstaked(address indexed provider, address indexed token, uint256 amount);
    /// @notice Emitted when a fault report slashes a provider.
    /// @param amount Taken from the provider's locked stake; held for the rental until it is
    /// finalized (then SlashPaidOut).
    event Slashed(
        address indexed provider,
        uint256 indexed rentalId,
        uint32 indexed faultId,
        uint8 kind,
        address token,
        uint256 amount
    );
    /// @notice Emitted at finalization of a slashed rental.
    /// @param renterShare Credited to the renter: renterSlashShareBps of the slashed total,
    /// capped by what the rental cost the renter (0 when stake and payment tokens differ).
    /// @param treasuryShare The rest, credited to the treasury.
    event SlashPaidOut(uint256 indexed rentalId, address token, uint256 renterShare, uint256 treasuryShare);

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

    /// @notice An unstake names no recipient (the zero address).
    error ProviderStaking_InvalidRecipient(address to);
    /// @notice Fault kind outside 1..7.
    error ProviderStaking_UnknownFaultKind(uint8 kind);
    /// @notice The kind is a usage flag (IDLE_POWER_BUSY), never slashed.
    error ProviderStaking_FaultNotSlashable(uint8 kind);
    /// @notice This fault kind already slashed the rental in this slash window.
    error ProviderStaking_SlashWindowUsed(uint256 rentalId, uint8 kind, uint256 window);
    /// @notice The slash would move nothing (collateral used up, or slashBps 0): nodes eth_call
    /// first and send nothing.
    error ProviderStaking_NothingToSlash(uint256 rentalId);
    /// @notice The rental is not Active nor Ended within its settlement grace.
    error ProviderStaking_RentalNotSlashable(uint256 rentalId, uint8 status);
    /// @notice observedAt lies outside the rental (before its start, after its end or the block).
    error ProviderStaking_ObservedOutsideRental(uint256 rentalId, uint64 observedAt);
    /// @notice This (rentalId, faultId) already slashed.
    error ProviderStaking_FaultAlreadySettled(uint256 rentalId, uint32 faultId);

    /// @notice Stakes `amount` of `token` (allowed stake token) for the caller.
    /// @dev Refuses tokens that deliver less than `amount` (fee-on-transfer).
    function stake(address token, uint256 amount) external;

    /// @notice Moves `amount` of the caller's active stake into unbonding; restarts the
    /// unbonding timer for the whole unbonding amount.
    /// @dev The remaining active stake must still cover the caller's listed GPUs and its locked
    /// collateral (the larger of the two).
    function requestUnstake(uint256 amount) external;

    /// @notice Returns the caller's whole unbonding stake once the unbonding delay has passed.
    function completeUnstake() external;

    /// @notice Like completeUnstake, but pays the stake to `to` (for a provider the stake token
    /// refuses to send to, e.g. a USDC-style blocklist). Emits Unstaked with the caller as
    /// `provider`; the token's Transfer names `to`.
    /// @dev Reverts with ProviderStaking_InvalidRecipient for `to` = 0.
    function completeUnstakeTo(address to) external;

    /// @notice Slashes the provider of `report.rentalId` for a quorum-signed fault.
    /// @dev Each (rentalId, faultId) settles once, and each (rentalId, kind, window) once, where
    /// window = (observedAt - startedAt) / slashWindowSeconds. The rental must be Active, or
    /// Ended within its settlement grace; observedAt within [startedAt, end]. Amount: the
    /// rental's `slashBps` of its collateral, capped by the collateral not yet slashed; reverts
    /// if that is 0. The amount leaves the provider's locked stake and is held for the rental;
    /// finalization pays the renter its share (capped) and the treasury the rest. Callable by
    /// anyone.
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
