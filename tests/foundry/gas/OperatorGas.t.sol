// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {UsageReport} from "../../../contracts/types/DataTypes.sol";
import {OperatorFixture} from "../utils/OperatorFixture.sol";
import {Console} from "../utils/Console.sol";

/// @notice Gas of the operator paths, measured side by side with the market's own calls, each
/// from cold accounts and slots (vm.cool) as in its own transaction. Printed with
/// `forge test --match-contract OperatorGasTest -vv`; docs/economics.md quotes these numbers.
/// The bounds asserted are the ones docs/economics.md's rebate sizing relies on.
contract OperatorGasTest is OperatorFixture {
    uint256 internal constant BATCH = 20;

    function setUp() public {
        _deployRegistry();
        _earnFees(BIG_PRICE);
        registry.sync(address(usd)); // fills the rebate reserve
    }

    function test_gas_settleForCostsAtMostTheDocumentedOverhead() public {
        (UsageReport memory r0, bytes memory s0) = _fresh();
        vm.prank(_operator(0));
        registry.settleFor(r0, s0); // the operator's first rebate writes its rebate slot (zero to non-zero)
        (UsageReport memory r1, bytes memory s1) = _fresh();
        (UsageReport memory r2, bytes memory s2) = _fresh();
        _coolAll();
        vm.prank(keeper);
        uint256 start = gasleft();
        market.settle(r1, s1);
        uint256 direct = start - gasleft();
        _coolAll();
        vm.prank(_operator(0));
        start = gasleft();
        registry.settleFor(r2, s2);
        uint256 viaRegistry = start - gasleft();
        Console.log("settle direct (gas)", direct);
        Console.log("settleFor via registry (gas)", viaRegistry);
        Console.log("settleFor overhead (gas)", viaRegistry - direct);
        assertLe(viaRegistry - direct, 20_000, "settleFor overhead (steady state)");
    }

    function test_gas_settleBatchForCostsAtMostTheDocumentedOverheadPerReport() public {
        (UsageReport[] memory a, bytes memory sa) = _freshBatch();
        (UsageReport[] memory b, bytes memory sb) = _freshBatch();
        _coolAll();
        vm.prank(keeper);
        uint256 start = gasleft();
        market.settleBatch(a, sa);
        uint256 direct = start - gasleft();
        _coolAll();
        vm.prank(_operator(0));
        start = gasleft();
        uint256 counted = registry.settleBatchFor(b, sb);
        uint256 viaRegistry = start - gasleft();
        assertEq(counted, BATCH, "every report counted");
        Console.log("settleBatch of 20 direct, per report (gas)", direct / BATCH);
        Console.log("settleBatchFor of 20 via registry, per report (gas)", viaRegistry / BATCH);
        Console.log("settleBatchFor overhead per report (gas)", (viaRegistry - direct) / BATCH);
        assertLe((viaRegistry - direct) / BATCH, 20_000, "settleBatchFor overhead per report");
    }

    function test_gas_proveEquivocationAndSync() public {
        UsageReport memory a = _report(7, 3, 600, 1);
        UsageReport memory b = _report(7, 3, 600, 2);
        bytes memory sigA = _signAs(oracleKeys[0], a);
        bytes memory sigB = _signAs(oracleKeys[0], b);
        _coolAll();
        uint256 start = gasleft();
        registry.proveEquivocation(a, sigA, b, sigB);
        uint256 prove = start - gasleft();
        _earnFees(100_000_000);
        _coolAll();
        start = gasleft();
        registry.sync(address(usd));
        uint256 syncGas = start - gasleft();
        Console.log("proveEquivocation (gas)", prove);
        Console.log("sync, 5 signers (gas)", syncGas);
        assertLe(prove, 120_000, "proveEquivocation");
        assertLe(syncGas, 250_000, "sync");
    }

    function _fresh() internal returns (UsageReport memory report, bytes memory signatures) {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 600);
        report = _report(rentalId, 1, 600, 0);
        signatures = _signUsage(report);
    }

    function _freshBatch() internal returns (UsageReport[] memory reports, bytes memory signatures) {
        uint256[] memory ids = new uint256[](BATCH);
        for (uint256 i = 0; i < BATCH; i++) {
            ids[i] = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        }
        vm.warp(block.timestamp + 600);
        reports = new UsageReport[](BATCH);
        for (uint256 i = 0; i < BATCH; i++) {
            reports[i] = _report(ids[i], 1, 600, 0);
        }
        signatures = _signBatch(reports);
    }

    function _coolAll() internal {
        vm.cool(address(market));
        vm.cool(address(registry));
        vm.cool(address(usd));
        vm.cool(address(bondToken));
    }
}
