// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Stake, Rental, FaultReport, FAULT_KIND_MIN, FAULT_KIND_MAX} from "../types/DataTypes.sol";
import {IProviderStaking} from "../../interfaces/IProviderStaking.sol";
import {OracleQuorum} from "./OracleQuorum.sol";
import {ProviderReputation} from "./ProviderReputation.sol";
import {StakingLogic} from "../libraries/StakingLogic.sol";

/// @title ProviderStaking
/// @notice Provider stakes, unbonding (logic in the StakingLogic library), and slashing from
/// quorum-signed fault reports.
/// @dev NOTE: stake only has to cover GPUs in active offers. A provider may withdraw its offers
/// and unstake while rentals still run; its stake then stays slashable only for
/// `unbondingDelay`, so governance should keep unbondingDelay above the longest rental plus
/// `settlementGrace` plus the time nodes need to report a fault.
/// NOTE: a slash is capped by what is staked; a fault on an unstaked provider only counts in
/// its reputation.
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
        StakingLogic.completeUnstake(_stakes[msg.sender]);
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
        StakingLogic.slash(rental, _stakes[provider], _stakeTokenMinPerGpu, _balances, _params, report);
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
