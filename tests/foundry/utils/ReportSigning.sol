// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {UsageReport, FaultReport} from "../../../contracts/types/DataTypes.sol";
import {Vm} from "./Vm.sol";

/// @notice EIP-712 hashing of gpurent's typed structs, written from docs/protocol.md (not from
/// the contract) so that tests check the contract against the spec, and quorum signing with
/// known oracle keys through `vm.sign`.
library ReportSigning {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    bytes internal constant USAGE_REPORT_TYPE =
        "UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,uint32 challengesPassed,uint32 challengesFailed,bytes32 telemetryHash,uint32 signerSetVersion)";

    bytes32 internal constant USAGE_REPORT_TYPEHASH = keccak256(USAGE_REPORT_TYPE);

    bytes32 internal constant USAGE_REPORT_BATCH_TYPEHASH =
        keccak256(abi.encodePacked("UsageReportBatch(UsageReport[] reports)", USAGE_REPORT_TYPE));

    bytes32 internal constant FAULT_REPORT_TYPEHASH = keccak256(
        "FaultReport(uint256 rentalId,uint32 faultId,uint8 kind,uint64 observedAt,bytes32 evidenceHash,uint32 signerSetVersion)"
    );

    /// @dev secp256k1 group order, for malleability checks.
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    function domainSeparator(uint256 chainId, address market) internal pure returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("gpurent"), keccak256("1"), chainId, market));
    }

    function hashUsageReport(UsageReport memory r) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                USAGE_REPORT_TYPEHASH,
                r.rentalId,
                r.sequence,
                r.periodEnd,
                r.availableGpuSeconds,
                r.busyGpuSeconds,
                r.energyMillijoules,
                r.carbonMilligrams,
                r.uptimeBps,
                r.faultFlags,
                r.challengesPassed,
                r.challengesFailed,
                r.telemetryHash,
                r.signerSetVersion
            )
        );
    }

    function hashUsageBatch(UsageReport[] memory reports) internal pure returns (bytes32) {
        bytes32[] memory hashes = new bytes32[](reports.length);
        for (uint256 i = 0; i < reports.length; i++) {
            hashes[i] = hashUsageReport(reports[i]);
        }
        return keccak256(abi.encode(USAGE_REPORT_BATCH_TYPEHASH, keccak256(abi.encodePacked(hashes))));
    }

    function hashFaultReport(FaultReport memory f) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                FAULT_REPORT_TYPEHASH, f.rentalId, f.faultId, f.kind, f.observedAt, f.evidenceHash, f.signerSetVersion
            )
        );
    }

    function toTypedDataHash(bytes32 domain, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    function usageDigest(UsageReport memory r, address market) internal view returns (bytes32) {
        return toTypedDataHash(domainSeparator(block.chainid, market), hashUsageReport(r));
    }

    function batchDigest(UsageReport[] memory reports, address market) internal view returns (bytes32) {
        return toTypedDataHash(domainSeparator(block.chainid, market), hashUsageBatch(reports));
    }

    function faultDigest(FaultReport memory f, address market) internal view returns (bytes32) {
        return toTypedDataHash(domainSeparator(block.chainid, market), hashFaultReport(f));
    }

    /// @notice One 65-byte `r || s || v` signature (vm.sign yields low-s, v in {27, 28}).
    function signOne(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @notice Signs `digest` with every key, concatenated in strictly ascending signer order,
    /// as IOracleQuorum requires.
    function signQuorum(uint256[] memory keys, bytes32 digest) internal pure returns (bytes memory out) {
        uint256[] memory sorted = sortKeysByAddress(keys);
        for (uint256 i = 0; i < sorted.length; i++) {
            out = bytes.concat(out, signOne(sorted[i], digest));
        }
    }

    /// @notice Signs in exactly the given order (for ordering/duplicate tests).
    function signInOrder(uint256[] memory keys, bytes32 digest) internal pure returns (bytes memory out) {
        for (uint256 i = 0; i < keys.length; i++) {
            out = bytes.concat(out, signOne(keys[i], digest));
        }
    }

    /// @notice Insertion sort of keys by their address (n <= 31).
    function sortKeysByAddress(uint256[] memory keys) internal pure returns (uint256[] memory sorted) {
        sorted = new uint256[](keys.length);
        address[] memory addrs = new address[](keys.length);
        for (uint256 i = 0; i < keys.length; i++) {
            uint256 k = keys[i];
            address a = vm.addr(k);
            uint256 j = i;
            while (j > 0 && addrs[j - 1] > a) {
                sorted[j] = sorted[j - 1];
                addrs[j] = addrs[j - 1];
                j--;
            }
            sorted[j] = k;
            addrs[j] = a;
        }
    }

    /// @notice Addresses of `keys`, ascending (the form setSignerSet expects).
    function sortedAddresses(uint256[] memory keys) internal pure returns (address[] memory addrs) {
        uint256[] memory sorted = sortKeysByAddress(keys);
        addrs = new address[](sorted.length);
        for (uint256 i = 0; i < sorted.length; i++) {
            addrs[i] = vm.addr(sorted[i]);
        }
    }
}
