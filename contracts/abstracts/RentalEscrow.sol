// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {Offer, Rental, RentalTerms, RentalStatus, EndReason, Stake, RENTAL_TERMS_LAYOUT} from "../types/DataTypes.sol";
import {RentalLogic} from "../libraries/RentalLogic.sol";
import {IRentalEscrow} from "../../interfaces/IRentalEscrow.sol";
import {SettlementLogic} from "../libraries/SettlementLogic.sol";
import {OfferBook} from "./OfferBook.sol";
import {PackedView} from "../libraries/PackedView.sol";

/// @title RentalEscrow
/// @notice Rental lifecycle, budget escrow and the pull ledger.
/// @dev NOTE: payment tokens must be plain ERC-20s. Fee-on-transfer tokens are refused at
/// deposit, but rebasing tokens (balances that change without a transfer) and tokens that can
/// block transfers to an address (blocklists) are not defended against; governance allowlists
/// payment and stake tokens for this reason. A payee that a token blocklists can still take
/// its balance out to an address it names (withdrawTo; completeUnstakeTo for stake).
/// NOTE: a renter can always end a rental; the provider is paid only for what the quorum
/// attested up to the end (`periodEnd <= endedAt`) and settled within `settlementGrace`.
/// NOTE: every timeout, the grace, the fee, the slash terms and the collateral of a rental are
/// fixed when it opens (`_rentalTerms`); governance changes apply to rentals opened afterwards.
abstract contract RentalEscrow is IRentalEscrow, OfferBook {
    using SafeERC20 for IERC20;

    /// @inheritdoc IRentalEscrow
    function openRental(
        uint256 offerId,
        uint32 expectedOfferVersion,
        uint16 gpuCount,
        uint256 budget,
        bytes32 workloadHash
    ) external nonReentrant returns (uint256 rentalId) {
        Offer storage offer = _offers[offerId];
        // Check (in RentalLogic.checkOpen): offer listed at the version the renter saw, tokens
        // allowed, gpuCount and budget in range, the provider's stake covers its listed GPUs.
        RentalLogic.checkOpen(
            offer, _stakes, _paymentTokens, _stakeTokens, _stakeTokenMinPerGpu, offerId, expectedOfferVersion, gpuCount, budget
        );
        address provider = offer.provider;
        address token = offer.paymentToken;
        address stakeToken = _stakes[provider].token;

        // Effect: the terms first (RentalLogic.writeTerms reverts on an unregistered GPU model).
        rentalId = ++_rentalCount;
        RentalLogic.writeTerms(
            _rentalTerms[rentalId],
            offer,
            _gpuModels[offer.gpuModel],
            _params,
            stakeToken,
            _stakeTokenMinPerGpu[stakeToken],
            gpuCount,
            workloadHash
        );
        uint256 startDeadline = block.timestamp + _params.startTimeout;
        Rental storage rental = _rentals[rentalId];
        rental.status = RentalStatus.Open;
        rental.offerId = uint32(offerId); // offer ids are capped at uint32 by createOffer
        rental.pricePerGpuHour = offer.pricePerGpuHour;
        rental.pricePerKwh = offer.pricePerKwh;
        rental.feeBps = _params.protocolFeeBps;
        rental.budget = uint96(budget); // checked above
        rental.renter = msg.sender;
        rental.startDeadline = uint32(startDeadline); // startTimeout <= 7 days (validateParams)
        rental.provider = provider;
        rental.gpuCount = gpuCount;
        rental.maxDurationSeconds = _rentalTerms[rentalId].maxDurationSeconds;
        rental.powerLimitW = _rentalTerms[rentalId].powerLimitW; // the registered model's (writeTerms)
        emit RentalOpened(rentalId, offerId, msg.sender, provider, gpuCount, budget, startDeadline);

        // Interaction:
        _pullExact(token, msg.sender, budget);
    }

    /// @inheritdoc IRentalEscrow
    function startRental(uint256 rentalId) external {
        // Checks and effects in RentalLogic.start (offer listed, stake token allowed, free stake
        // covers the collateral; locks it, rental Active).
        RentalLogic.start(rentalId, _rentalIn(rentalId, RentalStatus.Open), _rentalTerms[rentalId], _offers, _stakes, _stakeTokens);
    }

    /// @inheritdoc IRentalEscrow
    function topUp(uint256 rentalId, uint256 amount) external nonReentrant {
        Rental storage rental = _rentals[rentalId];
        // Check and effect in RentalLogic.topUp; then the interaction.
        RentalLogic.topUp(rentalId, rental, amount);
        _pullExact(_offers[rental.offerId].paymentToken, msg.sender, amount);
    }

    /// @inheritdoc IRentalEscrow
    function cancelRental(uint256 rentalId) external {
        Rental storage rental = _rentalIn(rentalId, RentalStatus.Open);
        RentalLogic.cancel(rentalId, rental, _balances, _offers[rental.offerId].paymentToken);
    }

    /// @inheritdoc IRentalEscrow
    function endRental(uint256 rentalId) external {
        Rental storage rental = _rentalIn(rentalId, RentalStatus.Active);
        EndReason reason = EndReason.None; // set by every branch that does not revert
        // Check:
        if (msg.sender == rental.renter) {
            reason = EndReason.ByRenter;
        } else if (msg.sender == rental.provider) {
            reason = EndReason.ByProvider;
        } else if (block.timestamp >= uint256(rental.startedAt) + rental.maxDurationSeconds) {
            reason = EndReason.MaxDuration;
        } else {
            revert RentalEscrow_Unauthorized(rentalId, msg.sender);
        }
        // Effect:
        _end(rentalId, rental, reason);
    }

    /// @inheritdoc IRentalEscrow
    function closeSilentRental(uint256 rentalId) external {
        Rental storage rental = _rentalIn(rentalId, RentalStatus.Active);
        // Check:
        // Silence counts from the last settlement, or from the end of the last signer-set
        // rotation's overlap if later: a rotation never makes a rental silent.
        uint256 from = rental.lastSettledAt;
        uint256 rotationOverlapEnd = _previousSetValidUntil;
        if (rotationOverlapEnd > from) from = rotationOverlapEnd;
        uint256 until = from + _rentalTerms[rentalId].silenceTimeout;
        if (block.timestamp <= until) revert RentalEscrow_TooEarly(rentalId, until);
        // Effect:
        _end(rentalId, rental, EndReason.Silence);
    }

    /// @inheritdoc IRentalEscrow
    function finalizeRental(uint256 rentalId) external {
        Rental storage rental = _rentalIn(rentalId, RentalStatus.Ended);
        // Check and effects in RentalLogic.finalize: the grace has passed; refund, fee,
        // collateral release, slash payout, reputation.
        address provider = rental.provider;
        RentalLogic.finalize(
            rentalId,
            rental,
            _rentalTerms[rentalId],
            _stakes[provider],
            _reputations[provider],
            _balances,
            _params.treasury,
            _offers[rental.offerId].paymentToken,
            _operatorShare
        );
        // Effect: the provider's earnings not claimed yet (settlement accrues them in the rental).
        // The amount is credited and logged (EarningsClaimed) inside; finalization has no use for it.
        // slither-disable-next-line unused-return
        SettlementLogic.claimEarnings(rental, rentalId, _offers[rental.offerId].paymentToken, _balances);
    }

    /// @inheritdoc IRentalEscrow
    function withdraw(address token) external nonReentrant returns (uint256) {
        return _withdraw(token, msg.sender);
    }

    /// @inheritdoc IRentalEscrow
    function withdrawTo(address token, address to) external nonReentrant returns (uint256) {
        return _withdraw(token, to);
    }

    /// @inheritdoc IRentalEscrow
    function getRental(uint256 rentalId) external view returns (Rental memory) {
        return _rentals[rentalId];
    }

    /// @inheritdoc IRentalEscrow
    function rentalTerms(uint256 rentalId) external view returns (RentalTerms memory) {
        uint256 slot;
        assembly ("memory-safe") {
            slot := _rentalTerms.slot
        }
        PackedView.returnUnpacked(PackedView.at(slot, rentalId), RENTAL_TERMS_LAYOUT);
    }

    /// @inheritdoc IRentalEscrow
    function rentalCount() external view returns (uint256) {
        return _rentalCount;
    }

    /// @inheritdoc IRentalEscrow
    function withdrawable(address account, address token) external view returns (uint256) {
        return _balances[account][token];
    }

    /// @dev Pays the caller's whole balance of `token` to `to`.
    function _withdraw(address token, address to) private returns (uint256 amount) {
        amount = _balances[msg.sender][token];
        // Check:
        if (amount == 0) revert RentalEscrow_NothingToWithdraw(msg.sender, token);
        if (to == address(0)) revert RentalEscrow_InvalidRecipient(to);
        // Effect:
        _balances[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, amount);
        // Interaction:
        IERC20(token).safeTransfer(to, amount);
    }

    /// @dev Moves an active rental to Ended.
    function _end(uint256 rentalId, Rental storage rental, EndReason reason) internal {
        rental.status = RentalStatus.Ended;
        rental.endedAt = uint32(block.timestamp);
        rental.endReason = reason;
        emit RentalEnded(rentalId, reason, msg.sender, block.timestamp);
    }

    /// @dev The rental `rentalId`, which must exist and be in `status`.
    function _rentalIn(uint256 rentalId, RentalStatus status) internal view returns (Rental storage rental) {
        rental = _rentals[rentalId];
        RentalStatus current = rental.status;
        if (current == RentalStatus.None) revert RentalEscrow_UnknownRental(rentalId);
        if (current != status) revert RentalEscrow_WrongStatus(rentalId, uint8(current));
    }
}
