// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken
/// @notice Test-only ERC-20 that, once armed, makes one configurable external call in the middle
///         of `transfer` / `transferFrom` (after balances moved, like an ERC-777 hook), so a test
///         can re-enter the market from inside its own token interaction.
/// @dev The callback fires once per arming (the token disarms itself before calling, so the
///      callback cannot recurse). The outcome is recorded; with `bubble` set, a failed callback
///      reverts the whole transfer with the callback's revert data.
///      NOTE: not for production; anyone can mint and arm.
contract ReentrantToken is ERC20 {
    uint8 private immutable _decimals;

    /// @notice Which token entry point arms the callback.
    enum Hook {
        None,
        Transfer,
        TransferFrom,
        Both
    }

    Hook public hook;
    address public callbackTarget;
    bytes public callbackData;
    bool public bubble;

    /// @notice Number of callbacks made since deployment.
    uint256 public callbackCount;
    bool public lastCallbackSuccess;
    bytes public lastCallbackReturnData;

    event CallbackExecuted(address indexed target, bool success, bytes returnData);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms a single callback on the next matching transfer.
    function arm(Hook hook_, address target, bytes calldata data, bool bubble_) external {
        hook = hook_;
        callbackTarget = target;
        callbackData = data;
        bubble = bubble_;
    }

    function disarm() external {
        hook = Hook.None;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        bool ok = super.transfer(to, value);
        if (hook == Hook.Transfer || hook == Hook.Both) _callback();
        return ok;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        bool ok = super.transferFrom(from, to, value);
        if (hook == Hook.TransferFrom || hook == Hook.Both) _callback();
        return ok;
    }

    function _callback() private {
        hook = Hook.None;
        callbackCount += 1;
        (bool success, bytes memory ret) = callbackTarget.call(callbackData);
        lastCallbackSuccess = success;
        lastCallbackReturnData = ret;
        emit CallbackExecuted(callbackTarget, success, ret);
        if (!success && bubble) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }
}
