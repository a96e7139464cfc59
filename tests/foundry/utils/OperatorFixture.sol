// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {OperatorRegistry} from "../../../contracts/operators/OperatorRegistry.sol";
import {OperatorParams} from "../../../contracts/types/OperatorTypes.sol";
import {UsageReport} from "../../../contracts/types/DataTypes.sol";
import {TestStablecoin} from "../../../contracts/test/TestStablecoin.sol";
import {MarketFixture} from "./MarketFixture.sol";
import {ReportSigning} from "./ReportSigning.sol";

/// @notice A market (MarketFixture: five oracle keys, threshold 3) with an OperatorRegistry whose
/// operators are the five oracle keys, each bonded with MIN_BOND of a bond token.
abstract contract OperatorFixture is MarketFixture {
    uint256 internal constant MIN_BOND = 1_000e6;
    uint16 internal constant OP_SLASH_BPS = 5_000;
    uint16 internal constant PROVER_REWARD_BPS = 2_000;
    uint32 internal constant OP_UNBONDING_DELAY = 14 days;
    uint96 internal constant REBATE_PER_REPORT = 2_000; // 0.002 token per settled report
    uint16 internal constant OP_FEE_SHARE_BPS = 5_000; // half of each protocol fee to the operators
    /// @dev 4,000 tokens per GPU-hour: an hour's fee share is above the rebate reserve's target.
    uint72 internal constant BIG_PRICE = 4_000_000_000;

    OperatorRegistry internal registry;
    TestStablecoin internal bondToken;
    address internal opTreasury = address(0x7EA6);
    address internal prover = address(0x9807E2);

    function _deployRegistry() internal {
        _deployMarket();
        bondToken = new TestStablecoin();
        registry = new OperatorRegistry(address(market), governance, _operatorParams());
        vm.prank(governance);
        registry.setBondToken(address(bondToken), MIN_BOND);
        for (uint256 i = 0; i < oracleKeys.length; i++) {
            _bond(vm.addr(oracleKeys[i]), MIN_BOND);
        }
        _routeFeesToRegistry();
        vm.label(address(registry), "OperatorRegistry");
        vm.label(address(bondToken), "bondToken");
    }

    function _operatorParams() internal view returns (OperatorParams memory) {
        return OperatorParams({
            treasury: opTreasury,
            slashBps: OP_SLASH_BPS,
            proverRewardBps: PROVER_REWARD_BPS,
            unbondingDelay: OP_UNBONDING_DELAY,
            rebateToken: address(usd),
            rebatePerReport: REBATE_PER_REPORT
        });
    }

    /// @dev Links the registry to the market with OP_FEE_SHARE_BPS of each protocol fee (the
    /// oracle operators were bonded first: from now on the market requires it of every signer).
    function _routeFeesToRegistry() internal {
        vm.prank(governance);
        market.setOperatorRegistry(address(registry), OP_FEE_SHARE_BPS);
    }

    function _bond(address operator, uint256 amount) internal {
        bondToken.mint(operator, amount);
        vm.startPrank(operator);
        bondToken.approve(address(registry), amount);
        registry.bond(address(bondToken), amount);
        vm.stopPrank();
    }

    /// @dev Runs a 1-GPU rental for an hour, ends and finalizes it: `fee` of usd is credited to
    /// the registry's market balance.
    function _earnFees(uint72 pricePerGpuHour) internal returns (uint256 fee) {
        uint256 rentalId = _activeRental(1, pricePerGpuHour, 0, uint256(pricePerGpuHour) * 2);
        vm.warp(block.timestamp + 1 hours);
        _settle(rentalId, 1, 3600, 0);
        vm.prank(renter);
        market.endRental(rentalId);
        vm.warp(block.timestamp + SETTLEMENT_GRACE + 1); // finalization waits for the grace
        vm.prank(provider);
        market.finalizeRental(rentalId);
        fee = market.withdrawable(address(registry), address(usd));
    }

    /// @dev One operator's signature over the market's digest of `report`.
    function _signAs(uint256 key, UsageReport memory report) internal view returns (bytes memory) {
        return ReportSigning.signOne(key, market.usageReportDigest(report));
    }

    function _operator(uint256 i) internal view returns (address) {
        return vm.addr(oracleKeys[i]);
    }
}
