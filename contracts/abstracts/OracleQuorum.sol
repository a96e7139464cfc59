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
/// NOTE: rotating the set invalidates every signature made for the previous version, including
/// reports not yet submitted; nodes re-sign for the new version.
abstract contract OracleQuorum is IOracleQuorum, MarketStorage {
    /// @dev Signatures are 65 bytes each: r (32) || s (32) || v (1).
    uint256 private constant _SIGNATURE_LENGTH = 65;

    /// @inheritdoc IOracleQuorum
    function setSignerSet(address[] calldata signers, uint8 threshold) external onlyRole(_GOVERNANCE_ROLE) {
        uint32 version = _signerSetVersion + 1;
        // Check and effect (signer list, membership), then the version and threshold:
        GovernanceLogic.installSignerSet(_signers, _signerVersion, version, signers, threshold, _operatorShare.registry);
        _signerSetVersion = version;
        _threshold = threshold;
    }

    /// @inheritdoc IOracleQuorum
    function signerSet() external view returns (uint32 version, uint8 threshold, address[] memory signers) {
        return (_signerSetVersion, _threshold, _signers);
    }

    /// @inheritdoc IOracleQuorum
    function isSigner(address account) external view returns (bool) {
        uint32 version = _signerSetVersion;
        return version != 0 && _signerVersion[account] == version;
    }

    /// @inheritdoc IOracleQuorum
    function verifyQuorum(bytes32 digest, bytes calldata signatures) external view {
        _verifyQuorum(digest, signatures, _signerSetVersion);
    }

    /// @dev Reverts unless `signatures` carry at least `threshold` valid signatures over `digest`
    /// by distinct members of the current set, and `signedVersion` is the current version.
    /// Signers must be strictly ascending: this rejects a repeated signer with one comparison
    /// instead of a seen-bitmap (cheaper, and as strict). Recovery is OpenZeppelin's
    /// ECDSA.tryRecover(hash, v, r, s), which rejects s in the upper half order (malleability)
    /// and a zero-address recovery; a v other than 27/28 recovers to zero and is rejected too.
    function _verifyQuorum(bytes32 digest, bytes calldata signatures, uint32 signedVersion) internal view {
        uint32 version = _signerSetVersion;
        uint8 threshold = _threshold;
        if (version == 0) revert OracleQuorum_NoSignerSet();
        if (signedVersion != version) revert OracleQuorum_WrongSignerSetVersion(signedVersion, version);
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
            if (_signerVersion[signer] != version) revert OracleQuorum_UnknownSigner(i, signer);
            previous = signer;
        }
    }
}
