// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IOracleQuorum} from "../../interfaces/IOracleQuorum.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {GovernanceLogic} from "../libraries/GovernanceLogic.sol";

/// @title OracleQuorum
/// @notice Versioned oracle signer set and quorum verification.
/// @dev NOTE: a colluding quorum (threshold signers) can attest any usage and so move any
/// rental's budget to its provider, and can slash any provider; the threshold and the
/// independence of operators are the defence. Governance (a multisig or timelock) should keep
/// threshold > signers / 2.
/// NOTE: after a rotation, signatures of the previous version (with its threshold) keep
/// counting for `signerSetOverlap` seconds, so reports signed before the rotation still settle;
/// a rotation that removes a compromised set should first lower the overlap (possibly to 0).
/// A second rotation within the overlap ends the older set at once.
abstract contract OracleQuorum is IOracleQuorum, MarketStorage {
    /// @dev Signatures are 65 bytes each: r (32) || s (32) || v (1).
    uint256 private constant _SIGNATURE_LENGTH = 65;
    /// @dev Longest overlap governance may set: one week.
    uint32 private constant _MAX_SIGNER_SET_OVERLAP = 7 days;

    /// @inheritdoc IOracleQuorum
    function setSignerSet(address[] calldata signers, uint8 threshold) external onlyRole(_GOVERNANCE_ROLE) {
        uint32 previous = _signerSetVersion;
        uint32 version = previous + 1;
        // Check and effect (signer list, membership), then the version and threshold:
        GovernanceLogic.installSignerSet(_signers, _signerVersion, version, signers, threshold, _operatorShare.registry);
        // The previous set (if any) keeps counting for the overlap; block.timestamp + 7 days
        // fits uint32 until 2106.
        _previousThreshold = _threshold;
        _previousSetValidUntil = previous == 0 ? 0 : uint32(block.timestamp + _signerSetOverlap);
        _signerSetVersion = version;
        _threshold = threshold;
    }

    /// @inheritdoc IOracleQuorum
    function setSignerSetOverlap(uint32 overlapSeconds) external onlyRole(_GOVERNANCE_ROLE) {
        if (overlapSeconds > _MAX_SIGNER_SET_OVERLAP) revert OracleQuorum_InvalidOverlap(overlapSeconds);
        _signerSetOverlap = overlapSeconds;
        emit SignerSetOverlapUpdated(overlapSeconds);
    }

    /// @inheritdoc IOracleQuorum
    function signerSetRotation()
        external
        view
        returns (uint32 overlapSeconds, uint8 previousThreshold, uint32 previousValidUntil)
    {
        return (_signerSetOverlap, _previousThreshold, _previousSetValidUntil);
    }

    /// @inheritdoc IOracleQuorum
    function signerSet() external view returns (uint32 version, uint8 threshold, address[] memory signers) {
        return (_signerSetVersion, _threshold, _signers);
    }

    /// @inheritdoc IOracleQuorum
    function isSigner(address account) external view returns (bool) {
        uint32 version = _signerSetVersion;
        return version != 0 && uint32(_signerVersion[account]) == version;
    }

    /// @inheritdoc IOracleQuorum
    function verifyQuorum(bytes32 digest, bytes calldata signatures) external view {
        _verifyQuorum(digest, signatures, _signerSetVersion);
    }

    /// @dev Reverts unless `signatures` carry at least the threshold of valid signatures over
    /// `digest` by distinct members of set `signedVersion`, which is the current version, or the
    /// previous one (with its threshold) until `_previousSetValidUntil`.
    /// Signers must be strictly ascending: this rejects a repeated signer with one comparison
    /// instead of a seen-bitmap (cheaper, and as strict). Recovery is OpenZeppelin's
    /// ECDSA.tryRecover(hash, v, r, s), which rejects s in the upper half order (malleability)
    /// and a zero-address recovery; a v other than 27/28 recovers to zero and is rejected too.
    function _verifyQuorum(bytes32 digest, bytes calldata signatures, uint32 signedVersion) internal view {
        uint32 version = _signerSetVersion;
        uint8 threshold = _threshold;
        if (version == 0) revert OracleQuorum_NoSignerSet();
        if (signedVersion != version) {
            // The previous set, within its overlap (same slot as the version: no extra SLOAD).
            if (signedVersion != version - 1 || block.timestamp > _previousSetValidUntil) {
                revert OracleQuorum_WrongSignerSetVersion(signedVersion, version);
            }
            threshold = _previousThreshold;
        }
        uint256 length = signatures.length;
        uint256 count = length / _SIGNATURE_LENGTH;
        if (length % _SIGNATURE_LENGTH != 0 || count < threshold) {
            revert OracleQuorum_NotEnoughSignatures(length, threshold);
        }
        address previous;
        for (uint256 i; i < count; ++i) {
            bytes32 r;
            bytes32 s;
            uint8 v;
            // Reads signature i straight from calldata; `count * 65 == length`, so every read is
            // inside `signatures`.
            assembly ("memory-safe") {
                let p := add(signatures.offset, mul(i, 65))
                r := calldataload(p)
                s := calldataload(add(p, 32))
                v := byte(0, calldataload(add(p, 64)))
            }
            // The third value (the error's argument) adds nothing to our own error.
            // slither-disable-next-line unused-return
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
            if (err != ECDSA.RecoverError.NoError) revert OracleQuorum_InvalidSignature(i);
            if (signer <= previous) revert OracleQuorum_SignerOrder(i, previous, signer);
            uint64 versions = _signerVersion[signer];
            if (uint32(versions) != signedVersion && uint32(versions >> 32) != signedVersion) {
                revert OracleQuorum_UnknownSigner(i, signer);
            }
            previous = signer;
        }
    }
}
