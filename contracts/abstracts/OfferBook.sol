// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Offer, OfferTerms, OFFER_LAYOUT} from "../types/DataTypes.sol";
import {IOfferBook} from "../../interfaces/IOfferBook.sol";
import {OfferLogic} from "../libraries/OfferLogic.sol";
import {ProviderStaking} from "./ProviderStaking.sol";
import {PackedView} from "../libraries/PackedView.sol";

/// @title OfferBook
/// @notice Providers list, update and withdraw offers (listing logic in the OfferLogic library).
/// @dev NOTE: the chain does not track how many of an offer's GPUs are rented; the provider
/// starts only the rentals it can serve, and renters of unstarted rentals reclaim after the start
/// deadline. Declared region and grid intensity are the provider's claim; the oracle computes
/// carbon from its own intensity source.
abstract contract OfferBook is IOfferBook, ProviderStaking {
    /// @inheritdoc IOfferBook
    function createOffer(OfferTerms calldata terms) external returns (uint256 offerId) {
        offerId = _offerCount + 1;
        // Check: rentals store the offer id in 32 bits.
        if (offerId > type(uint32).max) revert OfferBook_UnknownOffer(offerId);
        // Effect:
        _offerCount = offerId;
        address stakeToken = _stakes[msg.sender].token;
        OfferLogic.create(
            _offers[offerId],
            _stakes[msg.sender],
            _stakeTokenMinPerGpu[stakeToken],
            _paymentTokens[terms.paymentToken],
            _stakeTokens[stakeToken],
            _gpuModels[terms.gpuModel],
            offerId,
            terms
        );
    }

    /// @inheritdoc IOfferBook
    function updateOffer(uint256 offerId, OfferTerms calldata terms) external {
        address stakeToken = _stakes[msg.sender].token;
        OfferLogic.update(
            _ownActiveOffer(offerId),
            _stakes[msg.sender],
            _stakeTokenMinPerGpu[stakeToken],
            _paymentTokens[terms.paymentToken],
            _stakeTokens[stakeToken],
            _gpuModels[terms.gpuModel],
            offerId,
            terms
        );
    }

    /// @inheritdoc IOfferBook
    function withdrawOffer(uint256 offerId) external {
        Offer storage offer = _ownActiveOffer(offerId);
        // Effect:
        offer.active = false;
        _stakes[msg.sender].listedGpus -= offer.gpuCount; // listedGpus includes this offer's GPUs
        emit OfferWithdrawn(offerId);
    }

    /// @inheritdoc IOfferBook
    function getOffer(uint256 offerId) external view returns (Offer memory) {
        uint256 slot;
        assembly ("memory-safe") {
            slot := _offers.slot
        }
        PackedView.returnUnpacked(PackedView.at(slot, offerId), OFFER_LAYOUT);
    }

    /// @inheritdoc IOfferBook
    function offerCount() external view returns (uint256) {
        return _offerCount;
    }

    /// @dev The caller's active offer `offerId`, or a revert.
    function _ownActiveOffer(uint256 offerId) private view returns (Offer storage offer) {
        offer = _offers[offerId];
        if (offer.provider == address(0)) revert OfferBook_UnknownOffer(offerId);
        if (offer.provider != msg.sender) revert OfferBook_NotProvider(offerId, msg.sender);
        if (!offer.active) revert OfferBook_OfferInactive(offerId);
    }
}
