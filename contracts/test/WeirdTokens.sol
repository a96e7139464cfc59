// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title RawBalances
/// @notice Test-only balance/allowance bookkeeping without return values or metadata, the base of
///         the odd tokens below (the weird-ERC-20 corpus: USDT, MKR, tokens without metadata).
/// @dev NOTE: not for production; anyone can mint.
abstract contract RawBalances {
    mapping(address owner => uint256 amount) public balanceOf;
    mapping(address owner => mapping(address spender => uint256 amount)) public allowance;
    uint256 public totalSupply;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function _approve(address spender, uint256 amount) internal {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
    }

    function _move(address from, address to, uint256 amount) internal {
        require(balanceOf[from] >= amount, "balance");
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }

    function _spend(address from, uint256 amount) internal {
        require(allowance[from][msg.sender] >= amount, "allowance");
        allowance[from][msg.sender] -= amount;
    }
}

/// @title ApprovalRaceToken
/// @notice USDT-style: `approve` refuses to change a non-zero allowance to another non-zero value
///         (set it to zero first), and `approve`/`transfer`/`transferFrom` return nothing.
contract ApprovalRaceToken is RawBalances {
    string public constant name = "Tether-style USD";
    string public constant symbol = "USDTs";
    uint8 public constant decimals = 6;

    function approve(address spender, uint256 amount) external {
        require(amount == 0 || allowance[msg.sender][spender] == 0, "approve from non-zero");
        _approve(spender, amount);
    }

    function transfer(address to, uint256 amount) external {
        _move(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external {
        _spend(from, amount);
        _move(from, to, amount);
    }
}

/// @title Bytes32SymbolToken
/// @notice MKR-style metadata: `name()` and `symbol()` return `bytes32`, not `string`.
contract Bytes32SymbolToken is RawBalances {
    bytes32 public constant name = "Maker-style";
    bytes32 public constant symbol = "MKRs";
    uint8 public constant decimals = 18;

    function approve(address spender, uint256 amount) external returns (bool) {
        _approve(spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _spend(from, amount);
        _move(from, to, amount);
        return true;
    }
}

/// @title NoMetadataToken
/// @notice An ERC-20 without the optional `name()`, `symbol()` and `decimals()`.
contract NoMetadataToken is RawBalances {
    function approve(address spender, uint256 amount) external returns (bool) {
        _approve(spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _spend(from, amount);
        _move(from, to, amount);
        return true;
    }
}

/// @title NoZeroApproveToken
/// @notice BNB-style: `approve(spender, 0)` reverts, so an allowance cannot be reset to zero.
contract NoZeroApproveToken is ERC20 {
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function approve(address spender, uint256 value) public override returns (bool) {
        require(value != 0, "zero approve");
        return super.approve(spender, value);
    }
}
