// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";

import {UsageReport} from "../types/DataTypes.sol";
import {SignedReport} from "../types/OperatorTypes.sol";
import {IOperatorRegistry} from "../../interfaces/IOperatorRegistry.sol";
import {IGpuRentMarket} from "../../interfaces/IGpuRentMarket.sol";

/// @title EquivocationEvidence
/// @notice Who signed a usage report, from the two things an oracle node signs over it: the report
/// alone (`market.usageReportDigest(report)`, for `settle`) or a `UsageReportBatch` holding it
/// (`market.usageBatchDigest(reports)`, for `settleBatch`); and whether two reports conflict.
/// Used by OperatorRegistry.proveEquivocation*.
/// @dev A batch signature is checked against the batch's EIP-712 digest rebuilt from the struct
/// hashes of its reports (what the digest commits to: keccak256(BATCH_TYPEHASH ||
/// keccak256(hashStruct(r_0) || ... || hashStruct(r_n-1)))), so a proof carries 32 bytes per
/// report of the batch instead of 416. The digest is wrapped in the market's own EIP-712 domain,
/// read from its ERC-5267 `eip712Domain()`: a signature made for another market or chain never
/// verifies here. tests/foundry/operators/EquivocationByBatch.t.sol checks these digests equal
/// the market's usageReportDigest / usageBatchDigest.
library EquivocationEvidence {
    /// @dev The market's type strings (UsageSettlement; docs/protocol.md).
    bytes32 internal constant USAGE_REPORT_TYPEHASH = keccak256(
        "UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,uint32 challengesPassed,uint32 challengesFailed,bytes32 telemetryHash,uint32 signerSetVersion)"
    );
    bytes32 internal constant USAGE_REPORT_BATCH_TYPEHASH = keccak256(
        "UsageReportBatch(UsageReport[] reports)UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,uint32 challengesPassed,uint32 challengesFailed,bytes32 telemetryHash,uint32 signerSetVersion)"
    );
    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @notice Reverts unless `a` and `b` are for the same rental and sequence and differ in some
    /// field other than signerSetVersion (a report re-signed unchanged for a new signer-set
    /// version, as nodes do after a rotation, is the same content).
    function requireConflict(UsageReport calldata a, UsageReport calldata b) internal pure {
        if (b.rentalId != a.rentalId || b.sequence != a.sequence) {
            revert IOperatorRegistry.OperatorRegistry_DifferentSlot(a.rentalId, a.sequence, b.rentalId, b.sequence);
        }
        if (_contentHash(a) == _contentHash(b)) revert IOperatorRegistry.OperatorRegistry_SameReport(a.rentalId, a.sequence);
    }

    /// @notice The key that signed `evidence.report`: over the report's own digest when
    /// `batchReportHashes` is empty, else over the digest of the UsageReportBatch whose report
    /// struct hashes are `batchReportHashes`, which must hold the report's at `batchIndex`.
    /// ECDSA.recover rejects malformed, high-s and zero-address signatures.
    function signer(IGpuRentMarket market, SignedReport calldata evidence) internal view returns (address) {
        uint256 count = evidence.batchReportHashes.length;
        if (count == 0) return ECDSA.recover(market.usageReportDigest(evidence.report), evidence.signature);
        uint256 index = evidence.batchIndex;
        if (index >= count || evidence.batchReportHashes[index] != structHash(evidence.report)) {
            revert IOperatorRegistry.OperatorRegistry_NotInBatch(evidence.report.rentalId, index);
        }
        bytes32 batchHash = keccak256(
            abi.encode(USAGE_REPORT_BATCH_TYPEHASH, keccak256(abi.encodePacked(evidence.batchReportHashes)))
        );
        return ECDSA.recover(MessageHashUtils.toTypedDataHash(domainSeparator(market), batchHash), evidence.signature);
    }

    /// @notice hashStruct(UsageReport) of EIP-712: keccak256(TYPEHASH || the report's 13 words).
    function structHash(UsageReport calldata report) internal pure returns (bytes32) {
        return keccak256(abi.encode(USAGE_REPORT_TYPEHASH, report));
    }

    /// @notice The market's EIP-712 domain separator, from its ERC-5267 fields (OpenZeppelin
    /// EIP712: name, version, chainId, verifyingContract).
    function domainSeparator(IGpuRentMarket market) internal view returns (bytes32) {
        // The fields bitmap, salt and extensions are fixed by OpenZeppelin's EIP712 (0x0f, 0, []).
        // slither-disable-next-line unused-return
        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            IERC5267(address(market)).eip712Domain();
        return keccak256(
            abi.encode(_DOMAIN_TYPEHASH, keccak256(bytes(name)), keccak256(bytes(version)), chainId, verifyingContract)
        );
    }

    /// @dev Hash of a report's fields except signerSetVersion.
    function _contentHash(UsageReport calldata report) private pure returns (bytes32) {
        UsageReport memory copy = report;
        copy.signerSetVersion = 0;
        return keccak256(abi.encode(copy));
    }
}
