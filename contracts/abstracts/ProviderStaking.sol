// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {Stake, Rental, FaultReport, FAULT_KIND_MIN, FAULT_KIND_MAX} from "../types/DataTypes.sol";
import {IProviderStaking} from "../../interfaces/IProviderStaking.sol";
import {OracleQuorum} from "./OracleQuorum.sol";
import {ProviderReputation} from "./ProviderReputation.sol";

/// @title ProviderStaking
/// @notice Provider stakes, unbonding, and slashing from quorum-signed fault reports.
/// @dev NOTE: stake only has to cover GPUs in active offers. A provider may withdraw its offers
/// and unstake while rentals still run; its stake then stays slashable only for
/// `unbondingDelay`, so governance should keep unbondingDelay above the longest rental plus
/// `settlementGrace` plus the time nodes need to report a fault.
/// NOTE: a slash is capped by what is staked; a fault on an unstaked provider only counts in
/// its reputation.
abstract contract ProviderStaking is IProviderStaking, OracleQuorum, ProviderReputation {
    using SafeERC20 for IERC20;

    bytes32 internal constant FAULT_REPORT_TYPEHASH = keccak256(
        "FaultReport(uint256 rentalId,uint32 faultId,uint8 kind,uint64 observedAt,bytes32 evidenceHash,uint32 signerSetVersion)"
    );

    /// @inheritdoc IProviderStaking
    function stake(address token, uint256 amount) external nonReentrant {
        Stake storage st = _stakes[msg.sender];
        // Check:
        if (!_stakeTokens[token]) revert ProviderStaking_TokenNotAllowed(token);
        address current = st.token;
        if (current != token) {
            if (current != address(0) && uint256(st.active) + st.unbonding != 0) {
                revert ProviderStaking_StakeTokenMismatch(current, token);
            }
            // Effect: an empty stake may switch token.
            st.token = token;
        }
        uint256 active = uint256(st.active) + amount;
        // active + unbonding stays within uint96, so moving stake into unbonding cannot overflow.
        if (amount == 0 || active + st.unbonding > type(uint96).max) revert ProviderStaking_InvalidAmount(amount);
        // Effect:
        st.active = uint96(active);
        emit Staked(msg.sender, token, amount, active);
        // Interaction: reverts (undoing the effect) if less than `amount` arrived.
        _pullExact(token, msg.sender, amount);
    }

    /// @inheritdoc IProviderStaking
    function requestUnstake(uint256 amount) external {
        Stake storage st = _stakes[msg.sender];
        uint256 active = st.active;
        // Check:
        if (amount == 0 || amount > active) revert ProviderStaking_InvalidAmount(amount);
        uint256 remaining = active - amount;
        uint256 required = _stakeTokenMinPerGpu[st.token] * st.listedGpus;
        if (remaining < required) revert ProviderStaking_InsufficientStake(msg.sender, remaining, required);
        // Effect:
        uint256 unbonding = uint256(st.unbonding) + amount;
        uint256 releaseAt = block.timestamp + _params.unbondingDelay;
        st.active = uint96(remaining);
        st.unbonding = uint96(unbonding); // active + unbonding <= uint96 max (enforced by stake)
        st.unbondingReleaseAt = uint32(releaseAt);
        emit UnstakeRequested(msg.sender, amount, unbonding, releaseAt);
    }

    /// @inheritdoc IProviderStaking
    function completeUnstake() external nonReentrant {
        Stake storage st = _stakes[msg.sender];
        uint256 amount = st.unbonding;
        // Check:
        if (amount == 0 || block.timestamp < st.unbondingReleaseAt) {
            revert ProviderStaking_NotUnbonded(amount, st.unbondingReleaseAt);
        }
        address token = st.token;
        // Effect:
        st.unbonding = 0;
        emit Unstaked(msg.sender, token, amount);
        // Interaction:
        IERC20(token).safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IProviderStaking
    function slash(FaultReport calldata report, bytes calldata signatures) external nonReentrant {
        uint256 rentalId = report.rentalId;
        uint32 faultId = report.faultId;
        uint8 kind = report.kind;
        // Check:
        if (kind < FAULT_KIND_MIN || kind > FAULT_KIND_MAX) revert ProviderStaking_UnknownFaultKind(kind);
        if (_faultSettled[rentalId][faultId]) revert ProviderStaking_FaultAlreadySettled(rentalId, faultId);
        Rental storage rental = _rentals[rentalId];
        if (rental.startedAt == 0) revert ProviderStaking_RentalNotStarted(rentalId);
        _verifyQuorum(_faultReportDigest(report), signatures, report.signerSetVersion);

        // Effect:
        _faultSettled[rentalId][faultId] = true;
        address provider = rental.provider;
        Stake storage st = _stakes[provider];
        address token = st.token;
        uint256 active = st.active;
        uint256 unbonding = st.unbonding;
        uint256 amount = _stakeTokenMinPerGpu[token] * rental.gpuCount * _params.slashBps / 10_000;
        if (amount > active + unbonding) amount = active + unbonding;
        if (amount <= active) {
            st.active = uint96(active - amount); // amount <= active
        } else {
            st.active = 0;
            st.unbonding = uint96(unbonding - (amount - active)); // amount <= active + unbonding
        }
        uint256 renterShare = amount * _params.renterSlashShareBps / 10_000;
        uint256 treasuryShare = amount - renterShare;
        _credit(rental.renter, token, renterShare);
        _credit(_params.treasury, token, treasuryShare);
        emit Slashed(provider, rentalId, faultId, kind, token, renterShare, treasuryShare);
        _recordSlash(provider);
    }

    /// @inheritdoc IProviderStaking
    function stakeOf(address provider) external view returns (Stake memory) {
        return _stakes[provider];
    }

    /// @inheritdoc IProviderStaking
    function requiredStake(address provider, uint256 gpus) external view returns (uint256) {
        return _stakeTokenMinPerGpu[_stakes[provider].token] * gpus;
    }

    /// @inheritdoc IProviderStaking
    function isFaultSettled(uint256 rentalId, uint32 faultId) external view returns (bool) {
        return _faultSettled[rentalId][faultId];
    }

    /// @inheritdoc IProviderStaking
    function faultReportDigest(FaultReport calldata report) external view returns (bytes32) {
        return _faultReportDigest(report);
    }

    /// @dev EIP-712 digest of a fault report (docs/protocol.md).
    function _faultReportDigest(FaultReport calldata report) internal view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    FAULT_REPORT_TYPEHASH,
                    report.rentalId,
                    report.faultId,
                    report.kind,
                    report.observedAt,
                    report.evidenceHash,
                    report.signerSetVersion
                )
            )
        );
    }

    /// @dev Reverts unless `provider` has chosen a stake token and its active stake covers
    /// `gpus` listed GPUs.
    function _requireStakeCovers(address provider, uint256 gpus) internal view {
        Stake storage st = _stakes[provider];
        uint256 required = _stakeTokenMinPerGpu[st.token] * gpus;
        uint256 active = st.active;
        if (st.token == address(0) || active < required) {
            revert ProviderStaking_InsufficientStake(provider, active, required);
        }
    }
}
