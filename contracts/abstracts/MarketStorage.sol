// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {Offer, Rental, RentalTerms, Stake, Reputation, MarketParams, GpuModelSpec} from "../types/DataTypes.sol";
import {OperatorShare} from "../types/OperatorTypes.sol";
import {IRentalEscrow} from "../../interfaces/IRentalEscrow.sol";

/// @title MarketStorage
/// @notice All state of GpuRentMarket in one place, plus the token-movement helpers every
/// feature uses.
/// @dev ReentrancyGuardTransient (EIP-1153) instead of ReentrancyGuard: the guard costs ~200 gas
/// per call instead of ~5,000 on a cold storage slot, which matters on the settlement path.
abstract contract MarketStorage is AccessControl, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @dev Role that sets the signer set, parameters and token allowlists (exposed as
    /// GOVERNANCE_ROLE() by GpuRentMarket).
    bytes32 internal constant _GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");

    // ---------------------------------------------------------------- oracle quorum
    /// @dev Current signer-set version and threshold, the previous set's threshold, until when
    /// the previous set's signatures still count (rotation time + overlap) and the overlap a
    /// rotation grants share one slot (one SLOAD per settlement).
    uint32 internal _signerSetVersion;
    uint8 internal _threshold;
    uint8 internal _previousThreshold;
    uint32 internal _previousSetValidUntil;
    /// @dev Seconds the previous set's signatures stay valid after a rotation
    /// (setSignerSetOverlap; at most OracleQuorum's _MAX_SIGNER_SET_OVERLAP).
    uint32 internal _signerSetOverlap = 1 days;
    address[] internal _signers;
    /// @dev Per signer, two versions packed: low 32 bits = the last version the signer was
    /// installed in, high 32 bits = the version it was installed in before that. A signer is in
    /// version v iff either equals v; only the current and the previous version are ever asked
    /// (one SLOAD per signature, no clean-up on rotation).
    mapping(address signer => uint64 versions) internal _signerVersion;

    // ---------------------------------------------------------------- governance
    MarketParams internal _params;
    mapping(address token => bool allowed) internal _paymentTokens;
    mapping(address token => bool allowed) internal _stakeTokens;
    /// @dev Kept when a stake token is disallowed, so existing stakes stay slashable.
    mapping(address token => uint256 amount) internal _stakeTokenMinPerGpu;
    /// @dev The GPU model table (governance): createOffer takes memory from it, openRental
    /// snapshots powerLimitW and memoryMib into the rental's terms.
    mapping(bytes32 model => GpuModelSpec spec) internal _gpuModels;

    // ---------------------------------------------------------------- staking
    mapping(address provider => Stake stake) internal _stakes;
    mapping(uint256 rentalId => mapping(uint32 faultId => bool settled)) internal _faultSettled;
    /// @dev Key: window index << 8 | fault kind; set when that kind slashed in that window.
    mapping(uint256 rentalId => mapping(uint256 windowKind => bool used)) internal _slashWindowUsed;

    // ---------------------------------------------------------------- offers and rentals
    uint256 internal _offerCount;
    mapping(uint256 offerId => Offer offer) internal _offers;
    uint256 internal _rentalCount;
    mapping(uint256 rentalId => Rental rental) internal _rentals;
    /// @dev Terms fixed at openRental (read by nodes via rentalTerms, by slash, close and
    /// finalize); written once, never by settlement.
    mapping(uint256 rentalId => RentalTerms terms) internal _rentalTerms;

    // ---------------------------------------------------------------- ledger and reputation
    mapping(address account => mapping(address token => uint256 amount)) internal _balances;
    /// @dev Written through storage pointers in ProviderReputation (slither cannot see it).
    // slither-disable-next-line uninitialized-state
    mapping(address provider => Reputation reputation) internal _reputations;

    // ---------------------------------------------------------------- oracle operators
    /// @dev The OperatorRegistry and its share of each protocol fee (see OperatorShare).
    OperatorShare internal _operatorShare;

    /// @dev Pulls exactly `amount` of `token` from `from`; reverts if the contract received less
    /// (fee-on-transfer and similar tokens are refused).
    function _pullExact(address token, address from, uint256 amount) internal {
        uint256 before = IERC20(token).balanceOf(address(this));
        // `from` is msg.sender at every call site (openRental, topUp), never a parameter.
        // slither-disable-next-line arbitrary-send-erc20
        IERC20(token).safeTransferFrom(from, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - before;
        if (received != amount) revert IRentalEscrow.RentalEscrow_TransferShortfall(token, amount, received);
    }
}
