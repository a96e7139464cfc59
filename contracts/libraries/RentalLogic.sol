// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {
    Offer,
    Rental,
    RentalTerms,
    RentalStatus,
    EndReason,
    Stake,
    Reputation,
    MarketParams,
    GpuModelSpec
} from "../types/DataTypes.sol";
import {OperatorShare} from "../types/OperatorTypes.sol";
import {IRentalEscrow} from "../../interfaces/IRentalEscrow.sol";
import {IOfferBook} from "../../interfaces/IOfferBook.sol";
import {IProviderStaking} from "../../interfaces/IProviderStaking.sol";
import {IReputation} from "../../interfaces/IReputation.sol";
import {StakeGuard} from "./StakeGuard.sol";

/// @title RentalLogic
/// @notice The cold ends of a rental's life in GpuRentMarket: fixing its terms at open, and
/// finalization (refund, fee, collateral release, slash payout, reputation). Deployed once as
/// an external library and reached by DELEGATECALL (GpuRentMarket's storage and events).
/// @dev Why a library: see OfferLogic (EIP-170). Both functions run once per rental; the caller
/// does the checks.
library RentalLogic {
    /// @notice The checks of openRental: offer `offerId` exists and is listed at
    /// `expectedOfferVersion`, its payment token and the provider's stake token are allowed,
    /// 1 <= gpuCount <= the offer's GPUs, 0 < budget <= uint96 max, and the provider's active
    /// stake covers all its listed GPUs.
    function checkOpen(
        Offer storage offer,
        mapping(address provider => Stake stake) storage stakes,
        mapping(address token => bool allowed) storage paymentTokens,
        mapping(address token => bool allowed) storage stakeTokens,
        mapping(address token => uint256 amount) storage minStakePerGpu,
        uint256 offerId,
        uint32 expectedOfferVersion,
        uint16 gpuCount,
        uint256 budget
    ) external view {
        address provider = offer.provider;
        Stake storage providerStake = stakes[provider];
        if (provider == address(0)) revert IOfferBook.OfferBook_UnknownOffer(offerId);
        if (!offer.active) revert IOfferBook.OfferBook_OfferInactive(offerId);
        if (offer.version != expectedOfferVersion) {
            revert IRentalEscrow.RentalEscrow_OfferVersionMismatch(offerId, expectedOfferVersion, offer.version);
        }
        if (!paymentTokens[offer.paymentToken]) revert IOfferBook.OfferBook_PaymentTokenNotAllowed(offer.paymentToken);
        if (gpuCount == 0 || gpuCount > offer.gpuCount) {
            revert IRentalEscrow.RentalEscrow_InvalidGpuCount(gpuCount, offer.gpuCount);
        }
        if (budget == 0 || budget > type(uint96).max) revert IRentalEscrow.RentalEscrow_InvalidAmount(budget);
        address stakeToken = providerStake.token;
        StakeGuard.requireStakeCovers(
            providerStake, stakeToken, provider, stakeTokens[stakeToken], minStakePerGpu[stakeToken], providerStake.listedGpus
        );
    }

    /// @notice Writes the terms of a rental being opened (RentalTerms): the offer's agent, model,
    /// region, intensity and SLA; the model table's power limit and memory; the current
    /// parameters the rental depends on; the collateral per GPU; the renter's workload hash.
    /// The rental's max duration is the lesser of the offer's and `maxRentalDuration`.
    /// Reverts with OfferBook_UnknownGpuModel when `model` is not registered.
    function writeTerms(
        RentalTerms storage terms,
        Offer storage offer,
        GpuModelSpec storage model,
        MarketParams storage params,
        address stakeToken,
        uint256 collateralPerGpu,
        uint16 gpuCount,
        bytes32 workloadHash
    ) external {
        if (model.powerLimitW == 0) revert IOfferBook.OfferBook_UnknownGpuModel(offer.gpuModel);
        uint32 maxDurationSeconds = offer.maxDurationSeconds;
        if (maxDurationSeconds > params.maxRentalDuration) maxDurationSeconds = params.maxRentalDuration;
        terms.agent = offer.agent;
        terms.gpuCount = gpuCount;
        terms.powerLimitW = model.powerLimitW;
        terms.memoryMib = model.memoryMib;
        terms.minUptimeBps = offer.minUptimeBps;
        terms.feeBps = params.protocolFeeBps;
        terms.gpuModel = offer.gpuModel;
        terms.region = offer.region;
        if (workloadHash != bytes32(0)) terms.workloadHash = workloadHash;
        terms.stakeToken = stakeToken;
        terms.collateralPerGpu = uint96(collateralPerGpu); // stake-token minimums are <= uint96 max
        terms.gridIntensityGPerKwh = offer.gridIntensityGPerKwh;
        terms.maxGapSeconds = offer.maxGapSeconds;
        terms.maxDurationSeconds = maxDurationSeconds;
        terms.silenceTimeout = params.silenceTimeout;
        terms.settlementGrace = params.settlementGrace;
        terms.slashWindowSeconds = params.slashWindowSeconds;
        terms.slashBps = params.slashBps;
        terms.renterSlashShareBps = params.renterSlashShareBps;
    }

    /// @notice Starts the Open rental `rental` for its provider (the caller) before its start
    /// deadline, while its offer is listed and its stake token allowed, and locks its
    /// collateral (collateralPerGpu x gpuCount) in the provider's free stake until finalization.
    function start(
        uint256 rentalId,
        Rental storage rental,
        RentalTerms storage terms,
        mapping(uint256 offerId => Offer offer) storage offers,
        mapping(address provider => Stake stake) storage stakes,
        mapping(address token => bool allowed) storage stakeTokens
    ) external {
        address provider = rental.provider;
        // Check:
        if (msg.sender != provider) revert IRentalEscrow.RentalEscrow_Unauthorized(rentalId, msg.sender);
        if (block.timestamp > rental.startDeadline) {
            revert IRentalEscrow.RentalEscrow_StartDeadlinePassed(rentalId, rental.startDeadline);
        }
        uint256 offerId = rental.offerId;
        if (!offers[offerId].active) revert IOfferBook.OfferBook_OfferInactive(offerId);
        address stakeToken = terms.stakeToken;
        if (!stakeTokens[stakeToken]) revert IOfferBook.OfferBook_StakeTokenNotAllowed(stakeToken);
        Stake storage providerStake = stakes[provider];
        uint256 collateral = uint256(terms.collateralPerGpu) * rental.gpuCount;
        uint256 locked = uint256(providerStake.locked) + collateral;
        uint256 active = providerStake.active;
        if (providerStake.token != stakeToken || locked > active) {
            revert IRentalEscrow.RentalEscrow_CollateralUnavailable(rentalId, active - providerStake.locked, collateral);
        }
        // Effect: lock the collateral until finalization (locked <= active, checked above).
        providerStake.locked = uint96(locked);
        rental.collateral = uint96(collateral);
        rental.status = RentalStatus.Active;
        rental.startedAt = uint32(block.timestamp);
        rental.lastSettledAt = uint32(block.timestamp);
        emit IRentalEscrow.RentalStarted(rentalId, block.timestamp);
    }

    /// @notice Adds `amount` to the budget of the Open or Active rental `rental` (the caller
    /// then pulls the tokens).
    function topUp(uint256 rentalId, Rental storage rental, uint256 amount) external {
        RentalStatus status = rental.status;
        // Check:
        if (status == RentalStatus.None) revert IRentalEscrow.RentalEscrow_UnknownRental(rentalId);
        if (status != RentalStatus.Open && status != RentalStatus.Active) {
            revert IRentalEscrow.RentalEscrow_WrongStatus(rentalId, uint8(status));
        }
        uint256 budget = uint256(rental.budget) + amount;
        if (amount == 0 || budget > type(uint96).max) revert IRentalEscrow.RentalEscrow_InvalidAmount(amount);
        // Effect:
        rental.budget = uint96(budget); // checked above
        emit IRentalEscrow.RentalToppedUp(rentalId, msg.sender, amount, budget);
    }

    /// @notice Cancels the Open rental `rental`: its renter or provider at any time, anyone after
    /// the start deadline. The whole budget becomes the renter's withdrawable balance.
    function cancel(
        uint256 rentalId,
        Rental storage rental,
        mapping(address account => mapping(address token => uint256 amount)) storage balances,
        address paymentToken
    ) external {
        address renter = rental.renter;
        // Check:
        if (msg.sender != renter && msg.sender != rental.provider && block.timestamp <= rental.startDeadline) {
            revert IRentalEscrow.RentalEscrow_Unauthorized(rentalId, msg.sender);
        }
        // Effect:
        uint256 refund = rental.budget;
        rental.status = RentalStatus.Cancelled;
        _credit(balances, renter, paymentToken, refund);
        emit IRentalEscrow.RentalCancelled(rentalId, msg.sender, refund);
    }

    /// @notice Finalizes an Ended rental once its settlement grace has passed: credits
    /// the refund and the fee, releases the provider's locked collateral, pays out the rental's
    /// slashes and records the rental in the provider's reputation.
    /// @param paymentToken The rental's payment token (its offer's).
    function finalize(
        uint256 rentalId,
        Rental storage rental,
        RentalTerms storage terms,
        Stake storage providerStake,
        Reputation storage reputation,
        mapping(address account => mapping(address token => uint256 amount)) storage balances,
        address treasury,
        address paymentToken,
        OperatorShare storage operatorShare
    ) external {
        // Check: the grace (final report, late faults) has passed, for everyone.
        uint256 until = uint256(rental.endedAt) + terms.settlementGrace;
        if (block.timestamp < until) revert IRentalEscrow.RentalEscrow_TooEarly(rentalId, until);
        uint256 paid = rental.paid;
        uint256 fee = paid * terms.feeBps / 10_000;
        uint256 refund = uint256(rental.budget) - paid; // paid <= budget (capped at settlement)
        // Effect: the escrow.
        rental.status = RentalStatus.Finalized;
        _credit(balances, rental.renter, paymentToken, refund);
        _creditFee(balances, treasury, operatorShare, paymentToken, fee);
        // Effect: the collateral. locked includes collateral - slashed of this rental.
        uint256 collateral = rental.collateral;
        providerStake.locked -= uint96(collateral - rental.slashed);
        _payOutSlashes(rentalId, rental, terms, balances, treasury, paymentToken);
        bool abandoned = _recordReputation(rental, reputation, fee, collateral);
        emit IRentalEscrow.RentalFinalized(rentalId, paid, fee, refund, abandoned);
    }

    /// @dev Splits what the rental's faults slashed: the renter's share, capped by what the
    /// rental cost it (so inducing faults never pays; only comparable when stake and payment
    /// tokens are the same token, else 0), and the rest to the treasury.
    function _payOutSlashes(
        uint256 rentalId,
        Rental storage rental,
        RentalTerms storage terms,
        mapping(address account => mapping(address token => uint256 amount)) storage balances,
        address treasury,
        address paymentToken
    ) private {
        uint256 slashed = rental.slashed;
        if (slashed == 0) return;
        address stakeToken = terms.stakeToken;
        uint256 renterShare = 0;
        if (stakeToken == paymentToken) {
            renterShare = slashed * terms.renterSlashShareBps / 10_000;
            uint256 paid = rental.paid;
            if (renterShare > paid) renterShare = paid;
        }
        _credit(balances, rental.renter, stakeToken, renterShare);
        _credit(balances, treasury, stakeToken, slashed - renterShare);
        emit IProviderStaking.SlashPaidOut(rentalId, stakeToken, renterShare, slashed - renterShare);
    }

    /// @dev Reputation of a finalized rental (docs/economics.md): abandoned when closed for
    /// silence, or ended by the provider or at max duration with no attested GPU time; else
    /// completed when it has attested GPU time, weighted by its fee x attested uptime x the share
    /// of its proof-of-GPU challenges passed. A rental the renter ended before any usage counts
    /// for nothing. Uptime and the challenge share are floored to basis points first on purpose:
    /// the formula is documented in integers (docs/economics.md). Every rental's challenge
    /// record is added to the provider's counters.
    // slither-disable-next-line divide-before-multiply
    function _recordReputation(Rental storage rental, Reputation storage reputation, uint256 fee, uint256 collateral)
        private
        returns (bool abandoned)
    {
        uint256 available = rental.availableGpuSeconds;
        uint256 passed = rental.challengesPassed;
        uint256 failed = rental.challengesFailed;
        EndReason reason = rental.endReason;
        abandoned = reason == EndReason.Silence || (available == 0 && reason != EndReason.ByRenter);
        if (abandoned) {
            ++reputation.abandonedRentals;
            reputation.abandonedCollateral += uint128(collateral);
        } else if (available != 0) {
            uint256 rentedGpuSeconds = uint256(rental.gpuCount) * (uint256(rental.endedAt) - rental.startedAt);
            uint256 uptimeBps = rentedGpuSeconds == 0 ? 0 : available * 10_000 / rentedGpuSeconds;
            if (uptimeBps > 10_000) uptimeBps = 10_000;
            ++reputation.completedRentals;
            // Floors to basis points first on purpose (the documented integer formula).
            // slither-disable-next-line divide-before-multiply
            reputation.deliveredFees += uint128(fee * uptimeBps * challengeShareBps(passed, failed) / 100_000_000);
        }
        // fee <= paid < 2**96 and available < 2**40 per rental: the sums fit for 2**32 rentals.
        reputation.feesPaid += uint128(fee);
        reputation.attestedGpuSeconds += uint64(available);
        // Challenge counts saturate instead of reverting: finalization must never be blocked.
        reputation.challengesPassed = _saturatingAdd32(reputation.challengesPassed, passed);
        reputation.challengesFailed = _saturatingAdd32(reputation.challengesFailed, failed);
        emit IReputation.ReputationUpdated(rental.provider, reputation);
    }

    /// @notice Share of a rental's proof-of-GPU challenges passed, in basis points (floor);
    /// 10000 for a rental without judged challenges.
    function challengeShareBps(uint256 passed, uint256 failed) internal pure returns (uint256) {
        uint256 judged = passed + failed;
        return judged == 0 ? 10_000 : passed * 10_000 / judged;
    }

    function _saturatingAdd32(uint32 total, uint256 amount) private pure returns (uint32) {
        uint256 sum = uint256(total) + amount; // both < 2**32
        return sum > type(uint32).max ? type(uint32).max : uint32(sum);
    }

    /// @notice The reputation score of IReputation.reputationScore.
    function score(Reputation storage reputation, uint256 prior) external view returns (uint256) {
        uint256 denominator =
            uint256(reputation.feesPaid) + reputation.abandonedCollateral + reputation.slashedAmount + prior;
        return 10_000 * uint256(reputation.deliveredFees) / denominator; // prior >= 1 (validateParams)
    }

    /// @dev Credits the protocol fee: floor(fee x feeShareBps / 10000) to the linked
    /// OperatorRegistry's withdrawable balance (none without a registry), the rest to the treasury.
    function _creditFee(
        mapping(address account => mapping(address token => uint256 amount)) storage balances,
        address treasury,
        OperatorShare storage operatorShare,
        address token,
        uint256 fee
    ) private {
        address registry = operatorShare.registry;
        uint256 operators = registry == address(0) ? 0 : fee * operatorShare.feeShareBps / 10_000;
        _credit(balances, registry, token, operators);
        _credit(balances, treasury, token, fee - operators);
    }

    function _credit(
        mapping(address account => mapping(address token => uint256 amount)) storage balances,
        address account,
        address token,
        uint256 amount
    ) private {
        if (amount != 0) balances[account][token] += amount;
    }
}
