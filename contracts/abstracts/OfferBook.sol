// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Offer, OfferTerms, Stake} from "../types/DataTypes.sol";
import {IOfferBook} from "../../interfaces/IOfferBook.sol";
import {ProviderStaking} from "./ProviderStaking.sol";

/// @title OfferBook
/// @notice Providers list, update and withdraw offers.
/// @dev NOTE: the chain does not track how many of an offer's GPUs are rented; the provider
/// starts only the rentals it can serve, and renters of unstarted rentals reclaim after the start
/// deadline. Declared region and grid intensity are the provider's claim; the oracle computes
/// carbon from its own intensity source.
abstract contract OfferBook is IOfferBook, ProviderStaking {
    /// @inheritdoc IOfferBook
    function createOffer(OfferTerms calldata terms) external returns (uint256 offerId) {
        // Check:
        _validateTerms(terms);
        Stake storage st = _stakes[msg.sender];
        uint256 listedGpus = uint256(st.listedGpus) + terms.gpuCount;
        _requireStakeCovers(msg.sender, listedGpus);
        if (listedGpus > type(uint32).max) revert OfferBook_InvalidTerms("gpuCount");
        offerId = _offerCount + 1;
        // Rentals store the offer id in 32 bits.
        if (offerId > type(uint32).max) revert OfferBook_UnknownOffer(offerId);
        // Effect:
        _offerCount = offerId;
        st.listedGpus = uint32(listedGpus); // checked above
        Offer storage offer = _offers[offerId];
        offer.provider = msg.sender;
        offer.paymentToken = terms.paymentToken;
        offer.active = true;
        _writeTerms(offer, terms);
        emit OfferCreated(offerId, msg.sender, terms);
    }

    /// @inheritdoc IOfferBook
    function updateOffer(uint256 offerId, OfferTerms calldata terms) external {
        Offer storage offer = _ownActiveOffer(offerId);
        // Check:
        if (terms.paymentToken != offer.paymentToken) {
            revert OfferBook_PaymentTokenChanged(offer.paymentToken, terms.paymentToken);
        }
        _validateTerms(terms);
        Stake storage st = _stakes[msg.sender];
        uint256 listedGpus = uint256(st.listedGpus) - offer.gpuCount + terms.gpuCount;
        if (terms.gpuCount > offer.gpuCount) _requireStakeCovers(msg.sender, listedGpus);
        if (listedGpus > type(uint32).max) revert OfferBook_InvalidTerms("gpuCount");
        // Effect:
        st.listedGpus = uint32(listedGpus);
        uint32 version = offer.version + 1;
        offer.version = version;
        _writeTerms(offer, terms);
        emit OfferUpdated(offerId, version, terms);
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
        return _offers[offerId];
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

    /// @dev Reverts on terms no rental could use.
    function _validateTerms(OfferTerms calldata terms) private view {
        if (!_paymentTokens[terms.paymentToken]) revert OfferBook_PaymentTokenNotAllowed(terms.paymentToken);
        if (terms.gpuCount == 0) revert OfferBook_InvalidTerms("gpuCount");
        if (terms.agent == address(0)) revert OfferBook_InvalidTerms("agent");
        if (terms.pricePerGpuHour == 0 && terms.pricePerKwh == 0) revert OfferBook_InvalidTerms("price");
        if (terms.maxDurationSeconds == 0) revert OfferBook_InvalidTerms("maxDurationSeconds");
        if (terms.minUptimeBps > 10_000) revert OfferBook_InvalidTerms("minUptimeBps");
    }

    /// @dev Stores the mutable terms of an offer.
    function _writeTerms(Offer storage offer, OfferTerms calldata terms) private {
        offer.gpuCount = terms.gpuCount;
        offer.minUptimeBps = terms.minUptimeBps;
        offer.pricePerKwh = terms.pricePerKwh;
        offer.agent = terms.agent;
        offer.pricePerGpuHour = terms.pricePerGpuHour;
        offer.memoryMib = terms.memoryMib;
        offer.maxDurationSeconds = terms.maxDurationSeconds;
        offer.gridIntensityGPerKwh = terms.gridIntensityGPerKwh;
        offer.region = terms.region;
        offer.gpuModel = terms.gpuModel;
    }
}
