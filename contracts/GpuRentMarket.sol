// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {MarketParams, GpuModelSpec} from "./types/DataTypes.sol";
import {IGpuRentMarket} from "../interfaces/IGpuRentMarket.sol";
import {UsageSettlement} from "./abstracts/UsageSettlement.sol";
import {GovernanceLogic} from "./libraries/GovernanceLogic.sol";

/// @title GpuRentMarket
/// @notice gpurent's single deployed contract: budget escrow for GPU rentals paid only from
/// oracle-attested usage, provider staking and slashing, reputation, and the oracle signer set.
/// @dev One contract so that settlement reads the signer set, rentals and balances without
/// external calls. Features live in abstract contracts (contracts/abstracts), state in
/// MarketStorage, types in contracts/types, documentation in interfaces/.
/// NOTE: governance (GOVERNANCE_ROLE, held by a TimelockController whose proposer is a
/// multisig) can replace the oracle signer set, and a colluding quorum can pay out any running
/// rental's budget and slash its collateral; governance cannot otherwise move escrowed funds or
/// stake, every parameter has an enforced range, and running rentals keep the terms they
/// opened with. The timelock's delay is what lets providers and renters exit first.
/// NOTE: only plain ERC-20 tokens belong on the allowlists (no rebasing, no fee-on-transfer,
/// no callbacks); fee-on-transfer is detected and refused at deposit, the rest is not.
contract GpuRentMarket is UsageSettlement, IGpuRentMarket {
    /// @param admin Receives DEFAULT_ADMIN_ROLE and GOVERNANCE_ROLE.
    /// @param initialParams First parameters (same limits as setParams).
    constructor(address admin, MarketParams memory initialParams) EIP712("gpurent", "1") {
        if (admin == address(0)) revert GpuRentMarket_InvalidParam("admin");
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(_GOVERNANCE_ROLE, admin);
        _setParams(initialParams);
    }

    /// @inheritdoc IGpuRentMarket
    function setParams(MarketParams calldata newParams) external onlyRole(_GOVERNANCE_ROLE) {
        _setParams(newParams);
    }

    /// @inheritdoc IGpuRentMarket
    function setPaymentToken(address token, bool allowed) external onlyRole(_GOVERNANCE_ROLE) {
        if (token == address(0)) revert GpuRentMarket_InvalidParam("token");
        _paymentTokens[token] = allowed;
        emit PaymentTokenSet(token, allowed);
    }

    /// @inheritdoc IGpuRentMarket
    function setStakeToken(address token, uint256 minStakePerGpu_) external onlyRole(_GOVERNANCE_ROLE) {
        GovernanceLogic.setStakeToken(_stakeTokens, _stakeTokenMinPerGpu, token, minStakePerGpu_);
    }

    /// @inheritdoc IGpuRentMarket
    function setGpuModel(bytes32 model, uint16 powerLimitW, uint32 memoryMib) external onlyRole(_GOVERNANCE_ROLE) {
        GovernanceLogic.setGpuModel(_gpuModels, model, powerLimitW, memoryMib);
    }

    /// @inheritdoc IGpuRentMarket
    function setOperatorRegistry(address registry, uint16 feeShareBps) external onlyRole(_GOVERNANCE_ROLE) {
        GovernanceLogic.setOperatorRegistry(_operatorShare, registry, feeShareBps);
    }

    /// @inheritdoc IGpuRentMarket
    function operatorRegistry() external view returns (address registry, uint16 feeShareBps) {
        return (_operatorShare.registry, _operatorShare.feeShareBps);
    }

    /// @inheritdoc IGpuRentMarket
    function gpuModelOf(bytes32 model) external view returns (GpuModelSpec memory) {
        return _gpuModels[model];
    }

    /// @inheritdoc IGpuRentMarket
    function params() external view returns (MarketParams memory) {
        return _params;
    }

    /// @inheritdoc IGpuRentMarket
    function isPaymentToken(address token) external view returns (bool) {
        return _paymentTokens[token];
    }

    /// @inheritdoc IGpuRentMarket
    function minStakePerGpu(address token) external view returns (uint256) {
        return _stakeTokens[token] ? _stakeTokenMinPerGpu[token] : 0;
    }

    /// @inheritdoc IGpuRentMarket
    function GOVERNANCE_ROLE() external pure returns (bytes32) {
        return _GOVERNANCE_ROLE;
    }

    /// @dev Validates and stores parameters.
    function _setParams(MarketParams memory newParams) private {
        GovernanceLogic.validateParams(newParams);
        _params = newParams;
        emit ParamsUpdated(newParams);
    }
}
