// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";

/// @notice Minimal test base for gpurent's Foundry suite: cheatcodes, assertions that revert
/// with the values that failed, `bound`, and the invariant-target getters forge reads.
/// @dev Written for this repository because forge-std is not installable offline. Forge fails a
/// test when it reverts, so every assertion simply reverts with a readable message.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /*//////////////////////////////////////////////////////////////
                               ASSERTIONS
    //////////////////////////////////////////////////////////////*/

    function fail(string memory message) internal pure {
        revert(string.concat("assertion failed: ", message));
    }

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) fail(message);
    }

    function assertFalse(bool condition, string memory message) internal pure {
        if (condition) fail(message);
    }

    function assertEq(uint256 left, uint256 right, string memory message) internal pure {
        if (left != right) {
            fail(string.concat(message, ": ", vm.toString(left), " != ", vm.toString(right)));
        }
    }

    function assertEq(address left, address right, string memory message) internal pure {
        if (left != right) {
            fail(string.concat(message, ": ", vm.toString(left), " != ", vm.toString(right)));
        }
    }

    function assertEq(bytes32 left, bytes32 right, string memory message) internal pure {
        if (left != right) fail(string.concat(message, ": bytes32 values differ"));
    }

    function assertEq(bool left, bool right, string memory message) internal pure {
        if (left != right) fail(string.concat(message, ": bool values differ"));
    }

    function assertLe(uint256 left, uint256 right, string memory message) internal pure {
        if (left > right) {
            fail(string.concat(message, ": ", vm.toString(left), " > ", vm.toString(right)));
        }
    }

    function assertGe(uint256 left, uint256 right, string memory message) internal pure {
        if (left < right) {
            fail(string.concat(message, ": ", vm.toString(left), " < ", vm.toString(right)));
        }
    }

    function assertLt(uint256 left, uint256 right, string memory message) internal pure {
        if (left >= right) {
            fail(string.concat(message, ": ", vm.toString(left), " >= ", vm.toString(right)));
        }
    }

    function assertGt(uint256 left, uint256 right, string memory message) internal pure {
        if (left <= right) {
            fail(string.concat(message, ": ", vm.toString(left), " <= ", vm.toString(right)));
        }
    }

    /*//////////////////////////////////////////////////////////////
                                FUZZING
    //////////////////////////////////////////////////////////////*/

    /// @dev Maps any `x` into `[min, max]` without discarding runs; values already inside the
    /// range are kept as they are so the fuzzer's edge-case dictionary still reaches the bounds.
    /// @dev Sets word `index` of the memory at `ptr` (a memory struct is one word per field, in
    /// declaration order): table-driven tests of one field at a time.
    function _setMemoryWord(uint256 ptr, uint256 index, uint256 value) internal pure {
        assembly ("memory-safe") {
            mstore(add(ptr, shl(5, index)), value)
        }
    }

    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }

    /*//////////////////////////////////////////////////////////////
                      INVARIANT TARGETS (read by forge)
    //////////////////////////////////////////////////////////////*/

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private targetedContracts_;
    address[] private targetedSenders_;
    address[] private excludedContracts_;
    address[] private excludedSenders_;
    FuzzSelector[] private targetedSelectors_;

    function targetContract(address target) internal {
        targetedContracts_.push(target);
    }

    function targetSender(address sender) internal {
        targetedSenders_.push(sender);
    }

    function excludeContract(address target) internal {
        excludedContracts_.push(target);
    }

    function excludeSender(address sender) internal {
        excludedSenders_.push(sender);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        targetedSelectors_.push(selector);
    }

    function targetContracts() public view returns (address[] memory) {
        return targetedContracts_;
    }

    function targetSenders() public view returns (address[] memory) {
        return targetedSenders_;
    }

    function excludeContracts() public view returns (address[] memory) {
        return excludedContracts_;
    }

    function excludeSenders() public view returns (address[] memory) {
        return excludedSenders_;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return targetedSelectors_;
    }
}
