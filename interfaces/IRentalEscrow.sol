// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Rental, RentalTerms, EndReason} from "../contracts/types/DataTypes.sol";

/// @title IRentalEscrow
/// @notice Rentals: budget escrow, start, top-up, end, finalization, and the pull ledger.
/// @dev Every state has an exit that needs no cooperation from the other side:
/// Open -> Cancelled (renter or provider at any time, anyone after `startDeadline`);
/// Active -> Ended (renter or provider at any time; anyone after `maxDurationSeconds` or after
/// `silenceTimeout` without a settlement); Ended -> Finalized (anyone after `settlementGrace`,
/// during which the final report can settle and faults can still slash). Refunds, earnings,
/// fees and slash shares are credited to withdrawable balances; `withdraw` pays them out (or
/// `withdrawTo`, to an address the payee names). No token is pushed to anyone the caller did not
/// name. A renter gets its refund without the provider on
/// every path: cancel (Open), end then finalize after the grace (Active), finalize (Ended).
/// Timeouts, grace, fee, slash terms and collateral are the rental's own (RentalTerms, fixed at
/// open); later parameter changes never apply to it.
interface IRentalEscrow {
    /// @notice Emitted when a renter opens a rental and escrows its budget.
    event RentalOpened(
        uint256 indexed rentalId,
        uint256 indexed offerId,
        address indexed renter,
        address provider,
        uint16 gpuCount,
        uint256 budget,
        uint256 startDeadline
    );
    /// @notice Emitted when the provider starts a rental.
    event RentalStarted(uint256 indexed rentalId, uint256 startedAt);
    /// @notice Emitted when a rental's budget grows.
    event RentalToppedUp(uint256 indexed rentalId, address indexed from, uint256 amount, uint256 budget);
    /// @notice Emitted when an unstarted rental is cancelled; its whole budget is refunded.
    event RentalCancelled(uint256 indexed rentalId, address indexed by, uint256 refund);
    /// @notice Emitted when an active rental ends (final settlement still possible).
    event RentalEnded(uint256 indexed rentalId, EndReason reason, address by, uint256 endedAt);
    /// @notice Emitted when a rental is finalized: refund to the renter, fee to the treasury,
    /// reputation updated.
    event RentalFinalized(uint256 indexed rentalId, uint256 paid, uint256 fee, uint256 refund, bool abandoned);
    /// @notice Emitted when an account withdraws its balance of a token.
    event Withdrawn(address indexed account, address indexed token, uint256 amount);

    /// @notice No such rental.
    error RentalEscrow_UnknownRental(uint256 rentalId);
    /// @notice The rental is in `status` (as uint8 of RentalStatus), not the one needed.
    error RentalEscrow_WrongStatus(uint256 rentalId, uint8 status);
    /// @notice The caller may not do this to this rental.
    error RentalEscrow_Unauthorized(uint256 rentalId, address caller);
    /// @notice The offer's version is `current`, the renter expected `expected`.
    error RentalEscrow_OfferVersionMismatch(uint256 offerId, uint32 expected, uint32 current);
    /// @notice gpuCount is zero or above the offer's GPUs.
    error RentalEscrow_InvalidGpuCount(uint16 gpuCount, uint16 offered);
    /// @notice Budget or top-up is zero or the budget would exceed uint96.
    error RentalEscrow_InvalidAmount(uint256 amount);
    /// @notice The start deadline `deadline` has passed.
    error RentalEscrow_StartDeadlinePassed(uint256 rentalId, uint256 deadline);
    /// @notice The settlement grace (or silence timeout) runs until `until`.
    error RentalEscrow_TooEarly(uint256 rentalId, uint256 until);
    /// @notice Token delivered `received` instead of `expected` (fee-on-transfer tokens refused).
    error RentalEscrow_TransferShortfall(address token, uint256 expected, uint256 received);
    /// @notice Nothing to withdraw.
    error RentalEscrow_NothingToWithdraw(address account, address token);

    /// @notice A withdrawal names no recipient (the zero address).
    error RentalEscrow_InvalidRecipient(address to);
    /// @notice The provider's free stake `free` (active - locked) is below the rental's
    /// `collateral`, or its stake is not in the rental's stake token.
    error RentalEscrow_CollateralUnavailable(uint256 rentalId, uint256 free, uint256 collateral);

    /// @notice Opens a rental of `gpuCount` GPUs of `offerId`, escrowing `budget` of the offer's
    /// payment token from the caller (who becomes the renter), and fixes its terms
    /// (`rentalTerms`): the offer's agent, model, region, intensity and SLA, the GPU model
    /// table's power limit and memory, and the current fee, timeouts, grace, slash terms and
    /// collateral per GPU.
    /// @dev Reverts unless the offer is listed, its GPU model is registered, and the provider's
    /// stake is in an allowed stake token and covers its listed GPUs.
    /// @param expectedOfferVersion The offer version the renter saw (protects against an update
    /// racing the open).
    /// @param workloadHash Commitment to the renter's workload spec (0 = none); the provider's
    /// daemon must run exactly that workload.
    /// @return rentalId The new rental id (ids start at 1).
    function openRental(
        uint256 offerId,
        uint32 expectedOfferVersion,
        uint16 gpuCount,
        uint256 budget,
        bytes32 workloadHash
    ) external returns (uint256 rentalId);

    /// @notice The provider starts an open rental before its start deadline and locks its
    /// collateral (collateralPerGpu x gpuCount of its stake) until the rental is finalized.
    /// @dev Reverts unless the offer is still listed, the stake token still allowed, and the
    /// provider's free stake (active - locked) covers the collateral.
    function startRental(uint256 rentalId) external;

    /// @notice Adds `amount` to the budget of an open or active rental (anyone may pay; refunds
    /// go to the renter).
    function topUp(uint256 rentalId, uint256 amount) external;

    /// @notice Cancels an unstarted rental: renter or provider at any time, anyone after the
    /// start deadline. The whole budget becomes the renter's withdrawable balance.
    function cancelRental(uint256 rentalId) external;

    /// @notice Ends an active rental: renter or provider at any time, anyone once
    /// `startedAt + maxDurationSeconds` has passed. Reports with `periodEnd <= endedAt` can still
    /// settle during the settlement grace.
    function endRental(uint256 rentalId) external;

    /// @notice Anyone ends an active rental that has had no settlement for its `silenceTimeout`
    /// seconds (counted from the last settlement or the start). Counts as abandoned by the
    /// provider.
    function closeSilentRental(uint256 rentalId) external;

    /// @notice Finalizes an ended rental (anyone, once the rental's `settlementGrace` has passed).
    /// Credits the unused budget to the renter and the protocol fee to the treasury, releases
    /// the provider's locked collateral, pays out the rental's slashes (the renter's share,
    /// capped by what the rental cost the renter, and the rest to the treasury), and updates
    /// reputation.
    function finalizeRental(uint256 rentalId) external;

    /// @notice Pays the caller its whole withdrawable balance of `token`.
    /// @return amount Amount transferred.
    function withdraw(address token) external returns (uint256 amount);

    /// @notice Pays the caller's whole withdrawable balance of `token` to `to` (for a payee the
    /// token refuses to send to, e.g. a USDC-style blocklist). Emits Withdrawn with the caller
    /// as `account`; the token's Transfer names `to`.
    /// @dev Reverts with RentalEscrow_InvalidRecipient for `to` = 0.
    /// @return amount Amount transferred.
    function withdrawTo(address token, address to) external returns (uint256 amount);

    /// @notice The stored rental.
    function getRental(uint256 rentalId) external view returns (Rental memory);

    /// @notice The terms fixed when `rentalId` opened (all zero for an unknown rental). Nodes
    /// meter and judge a rental by these only, never by the live offer or parameters.
    function rentalTerms(uint256 rentalId) external view returns (RentalTerms memory);

    /// @notice Number of rentals ever opened (the highest rental id).
    function rentalCount() external view returns (uint256);

    /// @notice Withdrawable balance of `account` in `token`.
    function withdrawable(address account, address token) external view returns (uint256);
}
