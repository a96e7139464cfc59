// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {MarketParams} from "../types/DataTypes.sol";
import {IGpuRentMarket} from "../../interfaces/IGpuRentMarket.sol";
import {IOracleQuorum} from "../../interfaces/IOracleQuorum.sol";

/// @title GovernanceLogic
/// @notice Parameter validation, stake-token settings and signer-set installation of GpuRentMarket, deployed once as an
/// external library and reached by DELEGATECALL (GpuRentMarket's storage and events).
/// @dev Why a library: see OfferLogic (EIP-170 code size). The caller
/// checks GOVERNANCE_ROLE.
library GovernanceLogic {
    uint256 private constant _MAX_SIGNERS = 31;
    uint16 private constant _MAX_FEE_BPS = 1000;

    /// @notice Reverts with GpuRentMarket_InvalidParam(field) on the first parameter out of range.
    function validateParams(MarketParams memory params) external pure {
        if (params.treasury == address(0)) revert IGpuRentMarket.GpuRentMarket_InvalidParam("treasury");
        if (params.protocolFeeBps > _MAX_FEE_BPS) revert IGpuRentMarket.GpuRentMarket_InvalidParam("protocolFeeBps");
        if (params.renterSlashShareBps > 10_000) {
            revert IGpuRentMarket.GpuRentMarket_InvalidParam("renterSlashShareBps");
        }
        if (params.slashBps > 10_000) revert IGpuRentMarket.GpuRentMarket_InvalidParam("slashBps");
        if (params.startTimeout == 0) revert IGpuRentMarket.GpuRentMarket_InvalidParam("startTimeout");
        if (params.silenceTimeout == 0) revert IGpuRentMarket.GpuRentMarket_InvalidParam("silenceTimeout");
        if (params.settlementGrace == 0) revert IGpuRentMarket.GpuRentMarket_InvalidParam("settlementGrace");
        if (params.unbondingDelay == 0) revert IGpuRentMarket.GpuRentMarket_InvalidParam("unbondingDelay");
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

    /// @notice Validates `signers` and `threshold`, marks each signer as a member of `version`
    /// (keeping the version it was last a member of, for the rotation overlap) and stores the list. The caller stores `version` and `threshold` afterwards.
    function installSignerSet(
        address[] storage storedSigners,
        mapping(address signer => uint64 versions) storage signerVersion,
        uint32 version,
        address[] calldata signers,
        uint8 threshold
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
