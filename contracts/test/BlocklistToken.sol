// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title BlocklistToken
/// @notice Test-only ERC-20 whose issuer can block addresses (USDC/USDT style): any transfer from
///         or to a blocked address reverts. Used to show that one payee who cannot receive does
///         not lock anyone else's money in the market.
/// @dev NOTE: not for production; anyone can mint and block.
contract BlocklistToken is ERC20 {
    uint8 private immutable _decimals;
    mapping(address account => bool blocked) public blocked;

    error BlocklistToken_Blocked(address account);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setBlocked(address account, bool isBlocked) external {
        blocked[account] = isBlocked;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blocked[from]) revert BlocklistToken_Blocked(from);
        if (blocked[to]) revert BlocklistToken_Blocked(to);
        super._update(from, to, value);
    }
}
