// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FeeOnTransferToken
/// @notice Test-only ERC-20 that burns `feeBps` of every transfer between two non-zero
///         addresses, so the recipient receives less than the amount asked for
///         (STA, PAXG, USDT with its fee switch on). The market must refuse it.
/// @dev NOTE: not for production; anyone can mint.
contract FeeOnTransferToken is ERC20 {
    uint16 public feeBps;
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_, uint16 feeBps_)
        ERC20(name_, symbol_)
    {
        _decimals = decimals_;
        feeBps = feeBps_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Turns the fee on or off after an allowlisting (a token that changes behaviour).
    function setFeeBps(uint16 feeBps_) external {
        feeBps = feeBps_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0) || feeBps == 0) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = (value * feeBps) / 10_000;
        super._update(from, address(0), fee); // burn the fee
        super._update(from, to, value - fee);
    }
}
