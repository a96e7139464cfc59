// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {GpuRentMarket} from "../../../contracts/GpuRentMarket.sol";
import {TestStablecoin} from "../../../contracts/test/TestStablecoin.sol";
import {Vm} from "./Vm.sol";

/// @notice Market steps that the fixture (unit, fuzz and gas tests) and the invariant handler take
/// the same way.
library MarketActions {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @dev Mints `amount` of `stakeToken` to `who`, who approves the market and stakes it.
    function stakeAs(GpuRentMarket market, TestStablecoin stakeToken, address who, uint256 amount) internal {
        stakeToken.mint(who, amount);
        vm.startPrank(who);
        stakeToken.approve(address(market), amount);
        market.stake(address(stakeToken), amount);
        vm.stopPrank();
    }
}
