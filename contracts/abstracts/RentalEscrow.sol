// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {Offer, Rental, RentalStatus, EndReason} from "../types/DataTypes.sol";
import {IRentalEscrow} from "../../interfaces/IRentalEscrow.sol";
import {SettlementLogic} from "../libraries/SettlementLogic.sol";
import {OfferBook} from "./OfferBook.sol";

/// @title RentalEscrow
/// @notice Rental lifecycle, budget escrow and the pull ledger.
/// @dev NOTE: payment tokens must be plain ERC-20s. Fee-on-transfer tokens are refused at
/// deposit, but rebasing tokens (balances that change without a transfer) and tokens that can
/// block transfers to an address (blocklists) are not defended against; governance allowlists
/// payment and stake tokens for this reason.
/// NOTE: a renter can always end a rental; the provider is paid only for what the quorum
/// attested up to the end (`periodEnd <= endedAt`) and settled within `settlementGrace`.
abstract contract RentalEscrow is IRentalEscrow, OfferBook {
    using SafeERC20 for IERC20;

    /// @dev Power limit snapshotted by a rental whose GPU model is not registered (above every
    /// model of oracle/gpu_models.py): still bounds a report's energy to a physical value.
    uint16 internal constant _UNREGISTERED_POWER_LIMIT_W = 1000;

    /// @inheritdoc IRentalEscrow
    function openRental(uint256 offerId, uint32 expectedOfferVersion, uint16 gpuCount, uint256 budget)
        external
        nonReentrant
        returns (uint256 rentalId)
    {
        Offer storage offer = _offers[offerId];
        address provider = offer.provider;
        address token = offer.paymentToken;
        // Check:
        if (provider == address(0)) revert OfferBook_UnknownOffer(offerId);
        if (!offer.active) revert OfferBook_OfferInactive(offerId);
        if (offer.version != expectedOfferVersion) {
            revert RentalEscrow_OfferVersionMismatch(offerId, expectedOfferVersion, offer.version);
        }
        if (!_paymentTokens[token]) revert OfferBook_PaymentTokenNotAllowed(token);
        if (gpuCount == 0 || gpuCount > offer.gpuCount) revert RentalEscrow_InvalidGpuCount(gpuCount, offer.gpuCount);
        if (budget == 0 || budget > type(uint96).max) revert RentalEscrow_InvalidAmount(budget);
        _requireStakeCovers(provider, _stakes[provider].listedGpus);

        // Effect:
        rentalId = ++_rentalCount;
        uint256 startDeadline = block.timestamp + _params.startTimeout;
        Rental storage rental = _rentals[rentalId];
        rental.status = RentalStatus.Open;
        rental.offerId = uint32(offerId); // offer ids are capped at uint32 by createOffer
        rental.pricePerGpuHour = offer.pricePerGpuHour;
        rental.pricePerKwh = offer.pricePerKwh;
        rental.feeBps = _params.protocolFeeBps;
        rental.budget = uint96(budget); // checked above
        rental.renter = msg.sender;
        rental.startDeadline = uint32(startDeadline);
        rental.provider = provider;
        rental.gpuCount = gpuCount;
        rental.maxDurationSeconds = offer.maxDurationSeconds;
        rental.powerLimitW = _powerLimitW(offer.gpuModel);
        emit RentalOpened(rentalId, offerId, msg.sender, provider, gpuCount, budget, startDeadline);

        // Interaction:
        _pullExact(token, msg.sender, budget);
    }

    /// @inheritdoc IRentalEscrow
    function startRental(uint256 rentalId) external {
        Rental storage rental = _rentalIn(rentalId, RentalStatus.Open);
        // Check:
        if (msg.sender != rental.provider) revert RentalEscrow_Unauthorized(rentalId, msg.sender);
        if (block.timestamp > rental.startDeadline) {
            revert RentalEscrow_StartDeadlinePassed(rentalId, rental.startDeadline);
        }
        // Effect:
        rental.status = RentalStatus.Active;
        rental.startedAt = uint32(block.timestamp);
        rental.lastSettledAt = uint32(block.timestamp);
        emit RentalStarted(rentalId, block.timestamp);
    }

    /// @inheritdoc IRentalEscrow
    function topUp(uint256 rentalId, uint256 amount) external nonReentrant {
        Rental storage rental = _rentals[rentalId];
        RentalStatus status = rental.status;
        // Check:
        if (status == RentalStatus.None) revert RentalEscrow_UnknownRental(rentalId);
        if (status != RentalStatus.Open && status != RentalStatus.Active) {
            revert RentalEscrow_WrongStatus(rentalId, uint8(status));
        }
        uint256 budget = uint256(rental.budget) + amount;
        if (amount == 0 || budget > type(uint96).max) revert RentalEscrow_InvalidAmount(amount);
        // Effect:
        rental.budget = uint96(budget); // checked above
        emit RentalToppedUp(rentalId, msg.sender, amount, budget);
        // Interaction:
        _pullExact(_offers[rental.offerId].paymentToken, msg.sender, amount);
    }

    /// @inheritdoc IRentalEscrow
    function cancelRental(uint256 rentalId) external {
        Rental storage rental = _rentalIn(rentalId, RentalStatus.Open);
        // Check:
        if (msg.sender != rental.renter && msg.sender != rental.provider && block.timestamp <= rental.startDeadline) {
            revert RentalEscrow_Unauthorized(rentalId, msg.sender);
        }
        // Effect:
        uint256 refund = rental.budget;
        rental.status = RentalStatus.Cancelled;
        _credit(rental.renter, _offers[rental.offerId].paymentToken, refund);
        emit RentalCancelled(rentalId, msg.sender, refund);
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
        uint256 until = from + _params.silenceTimeout;
        if (block.timestamp <= until) revert RentalEscrow_TooEarly(rentalId, until);
        // Effect:
        _end(rentalId, rental, EndReason.Silence);
    }

    /// @inheritdoc IRentalEscrow
    function finalizeRental(uint256 rentalId) external {
        Rental storage rental = _rentalIn(rentalId, RentalStatus.Ended);
        address provider = rental.provider;
        // Check:
        uint256 until = uint256(rental.endedAt) + _params.settlementGrace;
        if (msg.sender != provider && block.timestamp < until) revert RentalEscrow_TooEarly(rentalId, until);
        // Effect:
        uint256 paid = rental.paid;
        uint256 fee = paid * rental.feeBps / 10_000;
        uint256 refund = uint256(rental.budget) - paid; // paid <= budget (capped at settlement)
        address token = _offers[rental.offerId].paymentToken;
        bool abandoned = rental.endReason == EndReason.Silence;
        rental.status = RentalStatus.Finalized;
        SettlementLogic.claimEarnings(rental, rentalId, token, _balances);
        _credit(rental.renter, token, refund);
        _credit(_params.treasury, token, fee);
        emit RentalFinalized(rentalId, paid, fee, refund, abandoned);
        _recordFinalized(provider, abandoned, rental.sequence != 0, rental.availableGpuSeconds, SettlementLogic.uptimeBps(rental));
    }

    /// @inheritdoc IRentalEscrow
    function withdraw(address token) external nonReentrant returns (uint256 amount) {
        amount = _balances[msg.sender][token];
        // Check:
        if (amount == 0) revert RentalEscrow_NothingToWithdraw(msg.sender, token);
        // Effect:
        _balances[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, amount);
        // Interaction:
        IERC20(token).safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IRentalEscrow
    function getRental(uint256 rentalId) external view returns (Rental memory) {
        return _rentals[rentalId];
    }

    /// @inheritdoc IRentalEscrow
    function rentalCount() external view returns (uint256) {
        return _rentalCount;
    }

    /// @inheritdoc IRentalEscrow
    function withdrawable(address account, address token) external view returns (uint256) {
        return _balances[account][token];
    }

    /// @dev Power limit a new rental of `gpuModel` snapshots: the registered model's, or
    /// _UNREGISTERED_POWER_LIMIT_W while the model table does not list it.
    function _powerLimitW(bytes32 gpuModel) internal view returns (uint16 powerLimitW) {
        powerLimitW = _gpuModels[gpuModel].powerLimitW;
        if (powerLimitW == 0) powerLimitW = _UNREGISTERED_POWER_LIMIT_W;
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
