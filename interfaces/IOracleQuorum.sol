// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IOracleQuorum
/// @notice The versioned oracle signer set whose quorum of EIP-712 signatures releases payments
/// and slashes stake.
/// @dev Signatures are passed as one `bytes` value: the concatenation of 65-byte `r || s || v`
/// signatures (v in {27, 28}, s in the lower half order), ordered by strictly ascending recovered
/// signer address. Strict ordering rejects a repeated signer without a bitmap. Every signed
/// struct carries `signerSetVersion`, which must equal the current version, or the previous one
/// during the overlap after a rotation (see setSignerSet); the EIP-712 domain binds chain id and
/// this contract's address.
interface IOracleQuorum {
    /// @notice Emitted when governance installs a new signer set.
    /// @param version The new signer-set version (previous version + 1).
    /// @param signers The new signers, strictly ascending.
    /// @param threshold Signatures needed from distinct signers of this set.
    event SignerSetUpdated(uint32 indexed version, address[] signers, uint8 threshold);
    /// @notice Emitted when governance changes how long a replaced set's signatures still count.
    event SignerSetOverlapUpdated(uint32 overlapSeconds);

    /// @notice The signer list is empty, longer than 31, or not strictly ascending (duplicates).
    error OracleQuorum_InvalidSignerList(uint256 length);
    /// @notice A signer in the new set is the zero address.
    error OracleQuorum_ZeroSigner(uint256 index);
    /// @notice A signer list is not strictly ascending at `index`.
    error OracleQuorum_SignersNotAscending(uint256 index, address previous, address signer);
    /// @notice Threshold is 0 or above the number of signers.
    error OracleQuorum_InvalidThreshold(uint8 threshold, uint256 signerCount);
    /// @notice Signer `index` holds no bond in the market's OperatorRegistry (isBonded false).
    error OracleQuorum_SignerNotBonded(uint256 index, address signer);
    /// @notice The signed struct names another signer-set version than the current one.
    error OracleQuorum_WrongSignerSetVersion(uint32 reportVersion, uint32 current);
    /// @notice The overlap is above the maximum (7 days).
    error OracleQuorum_InvalidOverlap(uint32 overlapSeconds);
    /// @notice No signer set installed yet.
    error OracleQuorum_NoSignerSet();
    /// @notice `signatures` is not a whole number of 65-byte signatures, or fewer than threshold.
    error OracleQuorum_NotEnoughSignatures(uint256 signaturesLength, uint8 threshold);
    /// @notice Signature `index` does not recover (malformed, high-s, bad v, or zero address).
    error OracleQuorum_InvalidSignature(uint256 index);
    /// @notice Signature `index` recovers to an address outside the current signer set.
    error OracleQuorum_UnknownSigner(uint256 index, address signer);
    /// @notice Signature `index` recovers to an address not above the previous one (duplicate
    /// or misordered signer).
    error OracleQuorum_SignerOrder(uint256 index, address previous, address signer);

    /// @notice Replaces the signer set and threshold and bumps the version. Signatures for the
    /// version just replaced keep counting, with that set's members and threshold, for
    /// `overlapSeconds` (signerSetRotation) after this call, so reports signed before a rotation
    /// still settle; older versions stop counting at once. Silence (closeSilentRental) is
    /// measured from the end of that overlap at the earliest, so a rotation never makes a
    /// healthy rental silent.
    /// @dev Only GOVERNANCE_ROLE. `signers` must be strictly ascending, non-zero, 1..31 long.
    function setSignerSet(address[] calldata signers, uint8 threshold) external;

    /// @notice Sets how long the previous set's signatures count after a rotation (applies to
    /// the next rotation). 0 ends the old set at the rotation (e.g. to remove a compromised set).
    /// @dev Only GOVERNANCE_ROLE. At most 7 days; 1 day at deployment.
    function setSignerSetOverlap(uint32 overlapSeconds) external;

    /// @notice The rotation overlap and the state of the previous set.
    /// @return overlapSeconds Overlap the next rotation grants.
    /// @return previousThreshold Threshold of the previous version (current version - 1).
    /// @return previousValidUntil Last timestamp at which the previous version's signatures
    /// count (0 before the second set).
    function signerSetRotation()
        external
        view
        returns (uint32 overlapSeconds, uint8 previousThreshold, uint32 previousValidUntil);

    /// @notice The current signer set.
    /// @return version Current signer-set version (0 until the first set is installed).
    /// @return threshold Signatures needed.
    /// @return signers The signers, ascending.
    function signerSet() external view returns (uint32 version, uint8 threshold, address[] memory signers);

    /// @notice Whether `account` is in the current signer set.
    function isSigner(address account) external view returns (bool);

    /// @notice Reverts unless `signatures` hold a quorum of the current set over `digest`
    /// (the previous set's overlap does not apply here).
    /// @dev For off-chain checks and tests; settlement uses the same internal routine.
    function verifyQuorum(bytes32 digest, bytes calldata signatures) external view;
}
