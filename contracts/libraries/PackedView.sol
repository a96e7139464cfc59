// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title PackedView
/// @notice Returns a static struct straight from its packed storage slots, one ABI word per
/// field, without Solidity's storage-to-memory copy.
/// @dev Why: GpuRentMarket is at the EIP-170 code limit; a struct getter written in Solidity
/// (`return _rentalTerms[id];`) copies every field to memory before encoding it, about 200
/// bytes of code per getter. A layout is 3 bytes per field in declaration order: slot index
/// (from the struct's first slot), bit offset in that slot, bit width (0 = the whole word).
/// Solidity packs the first member of a slot in the lowest bits. The layouts live beside the
/// structs' getters; tests/foundry/unit/PackedViewLayout.t.sol checks each one against the
/// compiler's own struct getter, so a struct change that forgets its layout fails there.
library PackedView {
    /// @dev Ends the call, returning the fields of the struct stored at `base` as described by
    /// `layout` (the ABI encoding of a static struct is its fields, one word each).
    function returnUnpacked(uint256 base, bytes memory layout) internal view {
        assembly ("memory-safe") {
            let count := div(mload(layout), 3)
            let out := mload(0x40)
            let descriptors := add(layout, 0x20)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let d := shr(232, mload(add(descriptors, mul(i, 3))))
                let value := shr(and(shr(8, d), 0xff), sload(add(base, shr(16, d))))
                let width := and(d, 0xff)
                // shl(shift, value): 1 << width, the mask of `width` low bits (slither misreads the
                // operand order of the opcode).
                // slither-disable-next-line incorrect-shift
                if width { value := and(value, sub(shl(width, 1), 1)) }
                mstore(add(out, shl(5, i)), value)
            }
            return(out, shl(5, count))
        }
    }

    /// @dev Storage slot of the value at `key` of a mapping declared at slot `mappingSlot_`.
    function at(uint256 mappingSlot_, uint256 key) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0x00, key)
            mstore(0x20, mappingSlot_)
            slot := keccak256(0x00, 0x40)
        }
    }
}
