// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Receiver hook called by {HookToken} on every transfer to a contract.
interface ITokenReceiverHook {
    function onTokenReceived(address from, uint256 amount) external;
}

/// @title HookToken
/// @notice Test-only ERC-20 that calls `onTokenReceived(from, amount)` on a recipient that has
///         registered for hooks (as ERC-777 recipients register in ERC-1820), and reverts if that
///         hook reverts (push semantics). A recipient contract can therefore refuse a payment,
///         or re-enter the payer.
/// @dev NOTE: not for production; anyone can mint.
contract HookToken is ERC20 {
    uint8 private immutable _decimals;
    mapping(address account => bool registered) public hooked;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Registers (or unregisters) `account` for the receive hook.
    function setHooked(address account, bool registered) external {
        hooked[account] = registered;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (from != address(0) && hooked[to]) {
            ITokenReceiverHook(to).onTokenReceived(from, value);
        }
    }
}
