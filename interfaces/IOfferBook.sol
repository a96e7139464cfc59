// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Offer, OfferTerms} from "../contracts/types/DataTypes.sol";

/// @title IOfferBook
/// @notice Providers list, update and withdraw GPU offers.
/// @dev Rentals snapshot the offer's prices at open; updating or withdrawing an offer never
/// changes a running rental. An offer's provider and payment token never change.
interface IOfferBook {
    /// @notice Emitted when an offer is listed.
    event OfferCreated(uint256 indexed offerId, address indexed provider, OfferTerms terms);
    /// @notice Emitted when an offer's terms change; `version` increments on every update.
    event OfferUpdated(uint256 indexed offerId, uint32 version, OfferTerms terms);
    /// @notice Emitted when an offer is withdrawn (no new rentals; running ones continue).
    event OfferWithdrawn(uint256 indexed offerId);

    /// @notice No such offer.
    error OfferBook_UnknownOffer(uint256 offerId);
    /// @notice The caller is not the offer's provider.
    error OfferBook_NotProvider(uint256 offerId, address caller);
    /// @notice The offer is withdrawn.
    error OfferBook_OfferInactive(uint256 offerId);
    /// @notice `token` is not an allowed payment token.
    error OfferBook_PaymentTokenNotAllowed(address token);
    /// @notice updateOffer tried to change the payment token.
    error OfferBook_PaymentTokenChanged(address current, address requested);
    /// @notice gpuCount is zero, agent is zero, both prices are zero, maxDurationSeconds is
    /// zero or minUptimeBps is above 10000 (`field` names the first bad field).
    error OfferBook_InvalidTerms(string field);
    /// @notice `gpuModel` is not in the market's GPU model table.
    error OfferBook_UnknownGpuModel(bytes32 gpuModel);
    /// @notice The provider's stake token is no longer allowed; it cannot back new offers or rentals.
    error OfferBook_StakeTokenNotAllowed(address token);

    /// @notice Lists an offer for the caller. Needs active stake, in an allowed stake token, for
    /// all the caller's listed GPUs, and a registered GPU model (memory per GPU comes from the
    /// model table, not from the provider).
    /// @return offerId The new offer id (ids start at 1).
    function createOffer(OfferTerms calldata terms) external returns (uint256 offerId);

    /// @notice Replaces the terms of the caller's active offer (same payment token).
    function updateOffer(uint256 offerId, OfferTerms calldata terms) external;

    /// @notice Withdraws the caller's offer; its GPUs stop counting toward required stake.
    function withdrawOffer(uint256 offerId) external;

    /// @notice The stored offer.
    function getOffer(uint256 offerId) external view returns (Offer memory);

    /// @notice Number of offers ever created (the highest offer id).
    function offerCount() external view returns (uint256);
}
