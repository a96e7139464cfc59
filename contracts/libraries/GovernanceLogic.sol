// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {MarketParams, GpuModelSpec} from "../types/DataTypes.sol";
import {IGpuRentMarket} from "../../interfaces/IGpuRentMarket.sol";
import {IOracleQuorum} from "../../interfaces/IOracleQuorum.sol";
import {IOperatorRegistry} from "../../interfaces/IOperatorRegistry.sol";
import {OperatorShare} from "../types/OperatorTypes.sol";

/// @title GovernanceLogic
/// @notice Parameter validation, stake-token settings and signer-set installation of GpuRentMarket, deployed once as an
/// external library and reached by DELEGATECALL (GpuRentMarket's storage and events).
/// @dev Why a library: see OfferLogic (EIP-170 code size). The caller
/// checks GOVERNANCE_ROLE.
library GovernanceLogic {
    uint256 private constant _MAX_SIGNERS = 31;
    uint16 private constant _MAX_FEE_BPS = 1000;
    uint16 private constant _MAX_SLASH_BPS = 5000;
    uint256 private constant _MIN_TIMEOUT = 60;
    uint256 private constant _MAX_TIMEOUT = 7 days;
    uint256 private constant _MIN_RENTAL_DURATION = 1 hours;
    uint256 private constant _MAX_RENTAL_DURATION = 180 days;
    uint256 private constant _MAX_SLASH_WINDOW = 1 days;
    uint256 private constant _MAX_UNBONDING_DELAY = 400 days;
    uint16 private constant _MAX_POWER_LIMIT_W = 5000;

    /// @notice Reverts with GpuRentMarket_InvalidParam(field) on the first parameter out of range
    /// (ranges in IGpuRentMarket.setParams). Every duration is bounded so that
    /// block.timestamp + duration fits the uint32 timestamps until 2106.
    function validateParams(MarketParams memory params) external pure {
        if (params.treasury == address(0)) _invalid("treasury");
        if (params.protocolFeeBps > _MAX_FEE_BPS) _invalid("protocolFeeBps");
        if (params.renterSlashShareBps > 10_000) _invalid("renterSlashShareBps");
        if (params.slashBps > _MAX_SLASH_BPS) _invalid("slashBps");
        if (_outside(params.startTimeout, _MIN_TIMEOUT, _MAX_TIMEOUT)) _invalid("startTimeout");
        if (_outside(params.silenceTimeout, _MIN_TIMEOUT, _MAX_TIMEOUT)) _invalid("silenceTimeout");
        if (_outside(params.settlementGrace, _MIN_TIMEOUT, _MAX_TIMEOUT)) _invalid("settlementGrace");
        if (_outside(params.maxRentalDuration, _MIN_RENTAL_DURATION, _MAX_RENTAL_DURATION)) {
            _invalid("maxRentalDuration");
        }
        if (_outside(params.slashWindowSeconds, _MIN_TIMEOUT, _MAX_SLASH_WINDOW)) _invalid("slashWindowSeconds");
        // Unbonding outlasts the longest rental and its grace (collateral is also locked until
        // finalization; this keeps a provider slashable for anything it could still be reported for).
        if (
            params.unbondingDelay <= uint256(params.maxRentalDuration) + params.settlementGrace
                || params.unbondingDelay > _MAX_UNBONDING_DELAY
        ) _invalid("unbondingDelay");
        if (params.reputationPrior == 0) _invalid("reputationPrior");
    }

    /// @notice Registers, changes or removes (powerLimitW 0) a GPU model of the table.
    function setGpuModel(
        mapping(bytes32 model => GpuModelSpec spec) storage gpuModels,
        bytes32 model,
        uint16 powerLimitW,
        uint32 memoryMib
    ) external {
        if (model == bytes32(0)) _invalid("model");
        if (powerLimitW > _MAX_POWER_LIMIT_W) _invalid("powerLimitW");
        if (powerLimitW != 0 && memoryMib == 0) _invalid("memoryMib");
        gpuModels[model] = GpuModelSpec({powerLimitW: powerLimitW, memoryMib: powerLimitW == 0 ? 0 : memoryMib});
        emit IGpuRentMarket.GpuModelSet(model, powerLimitW, powerLimitW == 0 ? 0 : memoryMib);
    }

    function _outside(uint256 value, uint256 min, uint256 max) private pure returns (bool) {
        return value < min || value > max;
    }

    function _invalid(string memory field) private pure {
        revert IGpuRentMarket.GpuRentMarket_InvalidParam(field);
    }

    /// @notice Allows `token` for stakes with `minStakePerGpu` per GPU offered, or disallows it
    /// (0). Reverts with GpuRentMarket_InvalidParam on the zero address or a minimum above uint96.
    /// (Here rather than in GpuRentMarket for EIP-170 code size.)
    function setStakeToken(
        mapping(address token => bool allowed) storage stakeTokens,
        mapping(address token => uint256 amount) storage stakeTokenMinPerGpu,
        address token,
        uint256 minStakePerGpu
    ) external {
        if (token == address(0)) revert IGpuRentMarket.GpuRentMarket_InvalidParam("token");
        if (minStakePerGpu > type(uint96).max) revert IGpuRentMarket.GpuRentMarket_InvalidParam("minStakePerGpu");
        bool allowed = minStakePerGpu != 0;
        stakeTokens[token] = allowed;
        // A disallowed token keeps its last minimum: existing stakes stay slashable by it.
        if (allowed) stakeTokenMinPerGpu[token] = minStakePerGpu;
        emit IGpuRentMarket.StakeTokenSet(token, minStakePerGpu);
    }

    /// @notice Links the OperatorRegistry and its fee share (IGpuRentMarket.setOperatorRegistry).
    /// Reverts with GpuRentMarket_InvalidParam("operatorFeeShareBps") above 10000 or non-zero
    /// without a registry. (Here rather than in GpuRentMarket for EIP-170 code size.)
    function setOperatorRegistry(OperatorShare storage share, address registry, uint16 feeShareBps) external {
        if (feeShareBps > 10_000 || (registry == address(0) && feeShareBps != 0)) {
            revert IGpuRentMarket.GpuRentMarket_InvalidParam("operatorFeeShareBps");
        }
        share.registry = registry;
        share.feeShareBps = feeShareBps;
        emit IGpuRentMarket.OperatorRegistrySet(registry, feeShareBps);
    }

    /// @notice Validates `signers` and `threshold`, marks each signer as a member of `version`
    /// (keeping the version it was last a member of, for the rotation overlap) and stores the list. The caller stores `version` and `threshold` afterwards.
    function installSignerSet(
        address[] storage storedSigners,
        mapping(address signer => uint64 versions) storage signerVersion,
        uint32 version,
        address[] calldata signers,
        uint8 threshold,
        address operatorRegistry
    ) external {
        uint256 count = signers.length;
        // Check:
        if (count == 0 || count > _MAX_SIGNERS) revert IOracleQuorum.OracleQuorum_InvalidSignerList(count);
        if (threshold == 0 || threshold > count) revert IOracleQuorum.OracleQuorum_InvalidThreshold(threshold, count);
        address previous = address(0); // signers must be strictly above the zero address
        for (uint256 i; i < count; ++i) {
            address signer = signers[i];
            if (signer == address(0)) revert IOracleQuorum.OracleQuorum_ZeroSigner(i);
            if (signer <= previous) revert IOracleQuorum.OracleQuorum_SignersNotAscending(i, previous, signer);
            // The registry is the market's own governance-set contract (a view, no state change).
            if (operatorRegistry != address(0) && !IOperatorRegistry(operatorRegistry).isBonded(signer)) {
                revert IOracleQuorum.OracleQuorum_SignerNotBonded(i, signer);
            }
            // Effect: `version` becomes the last version, the former last one the previous.
            signerVersion[signer] = (uint64(uint32(signerVersion[signer])) << 32) | version;
            previous = signer;
        }
        while (storedSigners.length != 0) storedSigners.pop();
        for (uint256 i; i < count; ++i) {
            storedSigners.push(signers[i]);
        }
        emit IOracleQuorum.SignerSetUpdated(version, signers, threshold);
    }
}
