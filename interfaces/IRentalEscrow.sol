// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Rental, EndReason} from "../contracts/types/DataTypes.sol";

/// @title IRentalEscrow
/// @notice Rentals: budget escrow, start, top-up, end, finalization, and the pull ledger.
/// @dev Every state has an exit that needs no cooperation from the other side:
/// Open -> Cancelled (renter or provider at any time, anyone after `startDeadline`);
/// Active -> Ended (renter or provider at any time; anyone after `maxDurationSeconds` or after
/// `silenceTimeout` without a settlement); Ended -> Finalized (provider at once, anyone after
/// `settlementGrace`). Refunds, earnings, fees and slash shares are credited to withdrawable
/// balances; `withdraw` pays them out. No token is pushed to anyone but the caller.
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

    /// @notice Opens a rental of `gpuCount` GPUs of `offerId`, escrowing `budget` of the offer's
    /// payment token from the caller (who becomes the renter).
    /// @param expectedOfferVersion The offer version the renter saw (protects against an update
    /// racing the open).
    /// @return rentalId The new rental id (ids start at 1).
    function openRental(uint256 offerId, uint32 expectedOfferVersion, uint16 gpuCount, uint256 budget)
        external
        returns (uint256 rentalId);

    /// @notice The provider starts an open rental before its start deadline.
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

    /// @notice Anyone ends an active rental that has had no settlement for `silenceTimeout`
    /// seconds (counted from the last settlement or the start). Counts as abandoned by the
    /// provider.
    function closeSilentRental(uint256 rentalId) external;

    /// @notice Finalizes an ended rental: the provider at once, anyone after `settlementGrace`.
    /// Credits the unused budget to the renter and the protocol fee to the treasury; updates
    /// reputation.
    function finalizeRental(uint256 rentalId) external;

    /// @notice Pays the caller its whole withdrawable balance of `token`.
    /// @return amount Amount transferred.
    function withdraw(address token) external returns (uint256 amount);

    /// @notice The stored rental.
    function getRental(uint256 rentalId) external view returns (Rental memory);

    /// @notice Number of rentals ever opened (the highest rental id).
    function rentalCount() external view returns (uint256);

    /// @notice Withdrawable balance of `account` in `token`.
    function withdrawable(address account, address token) external view returns (uint256);
}
