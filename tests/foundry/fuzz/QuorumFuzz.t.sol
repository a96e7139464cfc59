// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {UsageReport} from "../../../contracts/types/DataTypes.sol";
import {IOracleQuorum} from "../../../interfaces/IOracleQuorum.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";
import {ReportSigning} from "../utils/ReportSigning.sol";

/// @notice Quorum verification against random signer sets, subsets, thresholds and tampering.
contract QuorumFuzzTest is MarketFixture {
    uint256 internal constant MAX_SIGNERS = 31;

    function setUp() public {
        _deployMarket();
    }

    /// @dev Installs `n` fresh keys derived from `seed` with `threshold`; returns them sorted by
    /// address (the order signatures must come in).
    function _installRandomSet(uint256 seed, uint256 n, uint8 threshold) internal returns (uint256[] memory sorted) {
        uint256[] memory keys = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            keys[i] = bound(uint256(keccak256(abi.encode(seed, i))), 1, ReportSigning.SECP256K1_N - 1);
        }
        _installSigners(keys, threshold);
        sorted = ReportSigning.sortKeysByAddress(keys);
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        for (; x != 0; x &= x - 1) {
            c++;
        }
    }

    function _subset(uint256[] memory sortedKeys, uint256 mask) internal pure returns (uint256[] memory keys) {
        keys = new uint256[](_popcount(mask));
        uint256 j;
        for (uint256 i = 0; i < sortedKeys.length; i++) {
            if (mask & (1 << i) != 0) keys[j++] = sortedKeys[i];
        }
    }

    /// @dev A random subset of a random set verifies iff it has at least `threshold` signers.
    function testFuzz_verifyQuorum_acceptsIffThresholdDistinctSigners(
        uint256 seed,
        uint256 n,
        uint256 threshold,
        uint256 mask,
        bytes32 digest
    ) public {
        n = bound(n, 1, MAX_SIGNERS);
        threshold = bound(threshold, 1, n);
        mask = bound(mask, 0, (1 << n) - 1);
        uint256[] memory sorted = _installRandomSet(seed, n, uint8(threshold));
        uint256[] memory signing = _subset(sorted, mask);
        bytes memory signatures = ReportSigning.signInOrder(signing, digest);
        if (signing.length < threshold) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IOracleQuorum.OracleQuorum_NotEnoughSignatures.selector, signatures.length, uint8(threshold)
                )
            );
        }
        market.verifyQuorum(digest, signatures);
    }

    /// @dev Repeating any signer (so that the count reaches the threshold) is rejected.
    function testFuzz_verifyQuorum_rejectsDuplicateSigner(uint256 seed, uint256 n, uint256 dupIndex, bytes32 digest)
        public
    {
        n = bound(n, 2, MAX_SIGNERS);
        uint256[] memory sorted = _installRandomSet(seed, n, uint8(n));
        dupIndex = bound(dupIndex, 0, n - 2);
        // n signatures, threshold n: signers 0..n-2 plus signer dupIndex repeated next to itself.
        uint256[] memory signing = new uint256[](n);
        uint256 j;
        for (uint256 i = 0; i < n - 1; i++) {
            signing[j++] = sorted[i];
            if (i == dupIndex) signing[j++] = sorted[i];
        }
        address dup = vm.addr(sorted[dupIndex]);
        vm.expectRevert(abi.encodeWithSelector(IOracleQuorum.OracleQuorum_SignerOrder.selector, dupIndex + 1, dup, dup));
        market.verifyQuorum(digest, ReportSigning.signInOrder(signing, digest));
    }

    /// @dev Signatures out of ascending signer order are rejected.
    function testFuzz_verifyQuorum_rejectsUnorderedSigners(uint256 seed, uint256 n, uint256 swapAt, bytes32 digest)
        public
    {
        n = bound(n, 2, MAX_SIGNERS);
        uint256[] memory sorted = _installRandomSet(seed, n, uint8(n));
        swapAt = bound(swapAt, 0, n - 2);
        (sorted[swapAt], sorted[swapAt + 1]) = (sorted[swapAt + 1], sorted[swapAt]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOracleQuorum.OracleQuorum_SignerOrder.selector,
                swapAt + 1,
                vm.addr(sorted[swapAt]),
                vm.addr(sorted[swapAt + 1])
            )
        );
        market.verifyQuorum(digest, ReportSigning.signInOrder(sorted, digest));
    }

    /// @dev A key outside the set never counts, wherever it sits in the order.
    function testFuzz_verifyQuorum_rejectsUnknownSigner(uint256 seed, uint256 outsiderKey, bytes32 digest) public {
        uint256[] memory sorted = _installRandomSet(seed, 5, 3);
        outsiderKey = bound(outsiderKey, 1, ReportSigning.SECP256K1_N - 1);
        address outsider = vm.addr(outsiderKey);
        vm.assume(!market.isSigner(outsider));
        uint256[] memory signing = new uint256[](3);
        signing[0] = sorted[0];
        signing[1] = sorted[1];
        signing[2] = outsiderKey;
        signing = ReportSigning.sortKeysByAddress(signing);
        uint256 at;
        for (uint256 i = 0; i < 3; i++) {
            if (signing[i] == outsiderKey) at = i;
        }
        vm.expectRevert(abi.encodeWithSelector(IOracleQuorum.OracleQuorum_UnknownSigner.selector, at, outsider));
        market.verifyQuorum(digest, ReportSigning.signInOrder(signing, digest));
    }

    /// @dev The malleated twin (r, n - s, v ^ 1) of a valid signature is rejected.
    function testFuzz_verifyQuorum_rejectsMalleatedSignature(uint256 which, bytes32 digest) public view {
        uint256[] memory keys = ReportSigning.sortKeysByAddress(_quorumKeys());
        which = bound(which, 0, keys.length - 1);
        bytes memory signatures;
        for (uint256 i = 0; i < keys.length; i++) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[i], digest);
            if (i == which) {
                s = bytes32(ReportSigning.SECP256K1_N - uint256(s));
                v = v == 27 ? 28 : 27;
            }
            signatures = bytes.concat(signatures, abi.encodePacked(r, s, v));
        }
        try market.verifyQuorum(digest, signatures) {
            fail("malleated signature accepted");
        } catch (bytes memory reason) {
            assertEq(
                keccak256(reason),
                keccak256(abi.encodeWithSelector(IOracleQuorum.OracleQuorum_InvalidSignature.selector, which)),
                "InvalidSignature(which)"
            );
        }
    }

    /// @dev A v outside {27, 28} (recovers to nothing) is rejected.
    function testFuzz_verifyQuorum_rejectsBadV(uint8 badV, bytes32 digest) public {
        vm.assume(badV != 27 && badV != 28);
        uint256[] memory keys = ReportSigning.sortKeysByAddress(_quorumKeys());
        bytes memory signatures;
        for (uint256 i = 0; i < keys.length; i++) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[i], digest);
            if (i == 0) v = badV;
            signatures = bytes.concat(signatures, abi.encodePacked(r, s, v));
        }
        vm.expectRevert(abi.encodeWithSelector(IOracleQuorum.OracleQuorum_InvalidSignature.selector, 0));
        market.verifyQuorum(digest, signatures);
    }

    /// @dev Signatures that are not a whole number of 65-byte words are rejected.
    function testFuzz_verifyQuorum_rejectsRaggedLength(uint256 cut, bytes32 digest) public {
        bytes memory signatures = ReportSigning.signQuorum(oracleKeys, digest);
        cut = bound(cut, 1, 64);
        bytes memory ragged = new bytes(signatures.length - cut);
        for (uint256 i = 0; i < ragged.length; i++) {
            ragged[i] = signatures[i];
        }
        vm.expectRevert(
            abi.encodeWithSelector(IOracleQuorum.OracleQuorum_NotEnoughSignatures.selector, ragged.length, THRESHOLD)
        );
        market.verifyQuorum(digest, ragged);
    }

    /// @dev Arbitrary 65-byte words never pass as a quorum, even of threshold 1.
    function testFuzz_verifyQuorum_rejectsArbitrarySignature(bytes32 digest, bytes32 r, bytes32 s, uint8 v) public {
        _installSigners(oracleKeys, 1);
        (bool ok,) = address(market).call(abi.encodeCall(market.verifyQuorum, (digest, abi.encodePacked(r, s, v))));
        assertFalse(ok, "a random signature verified");
    }

    /// @dev A report signed by the quorum under another chain id or another deployment's domain
    /// does not settle here.
    function testFuzz_settle_rejectsReportSignedForAnotherDomain(uint256 otherChainId, address otherMarket) public {
        vm.assume(otherChainId != block.chainid || otherMarket != address(market));
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, PRICE_PER_KWH, 1e12);
        UsageReport memory report = _report(rentalId, 1, 3600, 0);
        bytes32 foreignDigest = ReportSigning.toTypedDataHash(
            ReportSigning.domainSeparator(otherChainId, otherMarket), ReportSigning.hashUsageReport(report)
        );
        bytes memory signatures = ReportSigning.signQuorum(_quorumKeys(), foreignDigest);
        (bool ok,) = address(market).call(abi.encodeCall(market.settle, (report, signatures)));
        assertFalse(ok, "foreign-domain report settled");
        assertEq(market.getRental(rentalId).paid, 0, "nothing paid");
    }

    /// @dev After a rotation, the old set's keys stop counting for verifyQuorum (the current set
    /// only; settlement's overlap for the previous version is tested in SignerRotation.t.sol),
    /// whatever subset of the new set signs.
    function testFuzz_rotation_invalidatesOldSignersAndVersion(uint256 seed, uint256 n, bytes32 digest) public {
        n = bound(n, 3, 10);
        uint32 oldVersion = _signerSetVersion();
        uint256[] memory newSorted = _installRandomSet(seed, n, 3);
        assertEq(_signerSetVersion(), oldVersion + 1, "version bumped");
        // Old keys against the new set: the lowest old key that is not in the new set fails.
        uint256[] memory oldKeys = ReportSigning.sortKeysByAddress(_quorumKeys());
        bool anyOutsider;
        for (uint256 i = 0; i < oldKeys.length; i++) {
            if (!market.isSigner(vm.addr(oldKeys[i]))) anyOutsider = true;
        }
        assertTrue(anyOutsider, "random new set shares no key with the fixture");
        vm.expectRevert(
            abi.encodeWithSelector(IOracleQuorum.OracleQuorum_UnknownSigner.selector, 0, vm.addr(oldKeys[0]))
        );
        market.verifyQuorum(digest, ReportSigning.signInOrder(oldKeys, digest));
        // The new keys verify.
        uint256[] memory three = new uint256[](3);
        (three[0], three[1], three[2]) = (newSorted[0], newSorted[1], newSorted[2]);
        market.verifyQuorum(digest, ReportSigning.signInOrder(three, digest));
    }
}
