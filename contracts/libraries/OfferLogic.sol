// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Offer, OfferTerms, Stake, GpuModelSpec} from "../types/DataTypes.sol";
import {IOfferBook} from "../../interfaces/IOfferBook.sol";
import {StakeGuard} from "./StakeGuard.sol";

/// @title OfferLogic
/// @notice Offer listing logic of GpuRentMarket, deployed once as an external library and
/// reached by DELEGATECALL, so it runs on GpuRentMarket's storage and emits its events.
/// @dev Why a library: GpuRentMarket as one contract exceeds the 24,576-byte code limit of
/// EIP-170 (it is compiled with optimizer runs 200: the settlement hot path is hand-written
/// assembly whose gas does not depend on the runs setting); offer listing is a cold path
/// whose extra DELEGATECALL (~2,600 gas cold) does not matter. The hot paths (settlement,
/// escrow) stay in GpuRentMarket. Deployers link this library (Brownie links the latest
/// deployed OfferLogic automatically; forge links it in tests).
library OfferLogic {
    /// @notice Lists offer `offerId` for the caller after validating terms and stake.
    /// @param minStakePerGpu The provider's stake token's minimum per GPU.
    /// @param stakeTokenAllowed Whether the provider's stake token is (still) allowed.
    /// @param model The GPU model table's row for `terms.gpuModel`.
    function create(
        Offer storage offer,
        Stake storage providerStake,
        uint256 minStakePerGpu,
        bool paymentTokenAllowed,
        bool stakeTokenAllowed,
        GpuModelSpec storage model,
        uint256 offerId,
        OfferTerms calldata terms
    ) external {
        address provider = msg.sender; // DELEGATECALL keeps the caller of GpuRentMarket
        // Check:
        _validateTerms(terms, paymentTokenAllowed, model);
        uint256 listedGpus = uint256(providerStake.listedGpus) + terms.gpuCount;
        _requireStakeCovers(providerStake, provider, minStakePerGpu, stakeTokenAllowed, listedGpus);
        // Effect:
        providerStake.listedGpus = uint32(listedGpus); // checked by _requireStakeCovers
        offer.provider = provider;
        offer.paymentToken = terms.paymentToken;
        offer.active = true;
        _writeTerms(offer, terms, model.memoryMib);
        emit IOfferBook.OfferCreated(offerId, provider, terms);
    }

    /// @notice Replaces the terms of `offer` (checked by the caller to be the provider's active
    /// offer).
    function update(
        Offer storage offer,
        Stake storage providerStake,
        uint256 minStakePerGpu,
        bool paymentTokenAllowed,
        bool stakeTokenAllowed,
        GpuModelSpec storage model,
        uint256 offerId,
        OfferTerms calldata terms
    ) external {
        address provider = msg.sender; // DELEGATECALL keeps the caller of GpuRentMarket
        // Check:
        if (terms.paymentToken != offer.paymentToken) {
            revert IOfferBook.OfferBook_PaymentTokenChanged(offer.paymentToken, terms.paymentToken);
        }
        _validateTerms(terms, paymentTokenAllowed, model);
        uint256 listedGpus = uint256(providerStake.listedGpus) - offer.gpuCount + terms.gpuCount;
        if (terms.gpuCount > offer.gpuCount) {
            _requireStakeCovers(providerStake, provider, minStakePerGpu, stakeTokenAllowed, listedGpus);
        }
        // Effect:
        providerStake.listedGpus = uint32(listedGpus); // not above the value before, or checked
        uint32 version = offer.version + 1;
        offer.version = version;
        _writeTerms(offer, terms, model.memoryMib);
        emit IOfferBook.OfferUpdated(offerId, version, terms);
    }

    /// @dev Reverts on terms no rental could use.
    function _validateTerms(OfferTerms calldata terms, bool paymentTokenAllowed, GpuModelSpec storage model)
        private
        view
    {
        if (!paymentTokenAllowed) revert IOfferBook.OfferBook_PaymentTokenNotAllowed(terms.paymentToken);
        if (model.powerLimitW == 0) revert IOfferBook.OfferBook_UnknownGpuModel(terms.gpuModel);
        if (terms.gpuCount == 0) revert IOfferBook.OfferBook_InvalidTerms("gpuCount");
        if (terms.agent == address(0)) revert IOfferBook.OfferBook_InvalidTerms("agent");
        if (terms.pricePerGpuHour == 0 && terms.pricePerKwh == 0) revert IOfferBook.OfferBook_InvalidTerms("price");
        if (terms.maxDurationSeconds == 0) revert IOfferBook.OfferBook_InvalidTerms("maxDurationSeconds");
        if (terms.minUptimeBps > 10_000) revert IOfferBook.OfferBook_InvalidTerms("minUptimeBps");
    }

    /// @dev Reverts unless `gpus` fits the uint32 listedGpus counter and the provider's stake
    /// covers them (StakeGuard).
    function _requireStakeCovers(
        Stake storage providerStake,
        address provider,
        uint256 minStakePerGpu,
        bool stakeTokenAllowed,
        uint256 gpus
    ) private view {
        if (gpus > type(uint32).max) revert IOfferBook.OfferBook_InvalidTerms("gpuCount");
        StakeGuard.requireStakeCovers(providerStake, providerStake.token, provider, stakeTokenAllowed, minStakePerGpu, gpus);
    }

    /// @dev Stores the mutable terms of an offer.
    function _writeTerms(Offer storage offer, OfferTerms calldata terms, uint32 memoryMib) private {
        offer.gpuCount = terms.gpuCount;
        offer.minUptimeBps = terms.minUptimeBps;
        offer.pricePerKwh = terms.pricePerKwh;
        offer.agent = terms.agent;
        offer.pricePerGpuHour = terms.pricePerGpuHour;
        offer.memoryMib = memoryMib;
        offer.maxGapSeconds = terms.maxGapSeconds;
        offer.maxDurationSeconds = terms.maxDurationSeconds;
        offer.gridIntensityGPerKwh = terms.gridIntensityGPerKwh;
        offer.region = terms.region;
        offer.gpuModel = terms.gpuModel;
    }
}
