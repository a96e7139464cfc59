// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Stake, STAKE_LAYOUT, Rental, FaultReport, FAULT_KIND_MIN, FAULT_KIND_MAX, FAULT_KIND_IDLE_POWER_BUSY} from "../types/DataTypes.sol";
import {IProviderStaking} from "../../interfaces/IProviderStaking.sol";
import {OracleQuorum} from "./OracleQuorum.sol";
import {ProviderReputation} from "./ProviderReputation.sol";
import {StakingLogic} from "../libraries/StakingLogic.sol";
import {PackedView} from "../libraries/PackedView.sol";

/// @title ProviderStaking
/// @notice Provider stakes, unbonding (logic in the StakingLogic library), and slashing from
/// quorum-signed fault reports.
/// @dev Starting a rental locks its collateral (collateralPerGpu x gpuCount, fixed at open) in
/// the provider's active stake until the rental is finalized; slashes of that rental come only
/// out of that collateral, so one rental can never take more than its own collateral, and a
/// provider's other rentals stay fully backed.
/// NOTE: stake beyond the locked collateral only has to cover GPUs in active offers.
abstract contract ProviderStaking is IProviderStaking, OracleQuorum, ProviderReputation {
    bytes32 internal constant FAULT_REPORT_TYPEHASH = keccak256(
        "FaultReport(uint256 rentalId,uint32 faultId,uint8 kind,uint64 observedAt,bytes32 evidenceHash,uint32 signerSetVersion)"
    );

    /// @inheritdoc IProviderStaking
    function stake(address token, uint256 amount) external nonReentrant {
        StakingLogic.stake(_stakes[msg.sender], _stakeTokens[token], token, amount);
    }

    /// @inheritdoc IProviderStaking
    function requestUnstake(uint256 amount) external {
        Stake storage st = _stakes[msg.sender];
        StakingLogic.requestUnstake(st, _stakeTokenMinPerGpu[st.token], _params.unbondingDelay, amount);
    }

    /// @inheritdoc IProviderStaking
    function completeUnstake() external nonReentrant {
        StakingLogic.completeUnstake(_stakes[msg.sender], msg.sender);
    }

    /// @inheritdoc IProviderStaking
    function completeUnstakeTo(address to) external nonReentrant {
        StakingLogic.completeUnstake(_stakes[msg.sender], to);
    }

    /// @inheritdoc IProviderStaking
    function slash(FaultReport calldata report, bytes calldata signatures) external nonReentrant {
        uint256 rentalId = report.rentalId;
        uint32 faultId = report.faultId;
        uint8 kind = report.kind;
        // Check: kind and fault id here; the rental, window and amount in StakingLogic.slash.
        if (kind < FAULT_KIND_MIN || kind > FAULT_KIND_MAX) revert ProviderStaking_UnknownFaultKind(kind);
        if (kind == FAULT_KIND_IDLE_POWER_BUSY) revert ProviderStaking_FaultNotSlashable(kind);
        if (_faultSettled[rentalId][faultId]) revert ProviderStaking_FaultAlreadySettled(rentalId, faultId);
        _verifyQuorum(_faultReportDigest(report), signatures, report.signerSetVersion);

        // Effect:
        _faultSettled[rentalId][faultId] = true;
        Rental storage rental = _rentals[rentalId];
        address provider = rental.provider;
        StakingLogic.slash(
            rental, _rentalTerms[rentalId], _stakes[provider], _slashWindowUsed[rentalId], _reputations[provider], report
        );
    }

    /// @inheritdoc IProviderStaking
    function stakeOf(address provider) external view returns (Stake memory) {
        uint256 slot;
        assembly ("memory-safe") {
            slot := _stakes.slot
        }
        PackedView.returnUnpacked(PackedView.at(slot, uint256(uint160(provider))), STAKE_LAYOUT);
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
}
