// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IOperatorRegistry} from "../../../interfaces/IOperatorRegistry.sol";
import {OperatorBond, OperatorParams} from "../../../contracts/types/OperatorTypes.sol";
import {UsageReport} from "../../../contracts/types/DataTypes.sol";
import {OperatorFixture} from "../utils/OperatorFixture.sol";

/// @notice Properties of the OperatorRegistry's arithmetic over random amounts and reports.
contract OperatorRegistryFuzzTest is OperatorFixture {
    function setUp() public {
        _deployRegistry();
    }

    /// @dev A slash takes exactly floor(bond x slashBps / 10000), active first, and splits it
    /// between prover and treasury without creating or losing a unit.
    function testFuzz_proveEquivocation_slashesExactlyTheShareAndConserves(
        uint96 extraBond,
        uint96 unbonding,
        uint16 slashBps,
        uint16 rewardBps
    ) public {
        slashBps = uint16(bound(slashBps, 1, 10_000));
        rewardBps = uint16(bound(rewardBps, 0, 5_000));
        OperatorParams memory p = _operatorParams();
        p.slashBps = slashBps;
        p.proverRewardBps = rewardBps;
        vm.prank(governance);
        registry.setParams(p);
        // An outsider (not in the signer set) with an active and an unbonding part.
        uint256 key = uint256(keccak256("fuzz operator"));
        address operator = vm.addr(key);
        uint256 active = bound(extraBond, 1, type(uint96).max / 4);
        uint256 leaving = bound(unbonding, 0, type(uint96).max / 4);
        _bond(operator, active + leaving);
        if (leaving != 0) {
            vm.prank(operator);
            registry.requestUnbond(leaving);
        }
        uint256 totalBefore = registry.totalBonded(address(bondToken));
        uint256 slashed = _proveAgainst(key);

        uint256 expected = (active + leaving) * slashBps / 10_000;
        assertEq(slashed, expected, "slashed == floor(bond * slashBps / 10000)");
        OperatorBond memory after_ = registry.bondOf(operator);
        assertEq(after_.active + after_.unbonding, active + leaving - expected, "bond reduced by the slash");
        if (expected <= active) assertEq(after_.unbonding, leaving, "active slashed first");
        _assertSplit(expected, rewardBps);
        assertEq(registry.totalBonded(address(bondToken)), totalBefore - expected, "total bonded");
    }

    function _proveAgainst(uint256 key) internal returns (uint256 slashed) {
        (UsageReport memory a, UsageReport memory b) = (_report(5, 2, 60, 1), _report(5, 2, 60, 2));
        bytes memory sigA = _signAs(key, a);
        bytes memory sigB = _signAs(key, b);
        vm.prank(prover);
        (, slashed) = registry.proveEquivocation(a, sigA, b, sigB);
    }

    function _assertSplit(uint256 slashed, uint256 rewardBps) internal view {
        uint256 reward = registry.balanceOf(prover, address(bondToken));
        assertEq(reward, slashed * rewardBps / 10_000, "prover reward");
        assertEq(reward + registry.balanceOf(opTreasury, address(bondToken)), slashed, "prover + treasury == slashed");
    }

    /// @dev Any difference in a field other than signerSetVersion is proof; the version alone is not.
    function testFuzz_proveEquivocation_anyContentDifferenceIsProof(uint8 field, uint256 delta, uint32 versionDelta)
        public
    {
        delta = bound(delta, 1, type(uint16).max); // fits every field, so XOR always changes it
        UsageReport memory a = _report(11, 4, 600, 5_000);
        UsageReport memory b = _report(11, 4, 600, 5_000);
        b.signerSetVersion = a.signerSetVersion + uint32(bound(versionDelta, 0, 1_000));
        field = uint8(bound(field, 0, 7));
        if (field == 0) b.periodEnd ^= uint64(delta);
        else if (field == 1) b.availableGpuSeconds ^= uint64(delta);
        else if (field == 2) b.busyGpuSeconds ^= uint64(delta);
        else if (field == 3) b.energyMillijoules ^= uint128(delta);
        else if (field == 4) b.carbonMilligrams ^= uint128(delta);
        else if (field == 5) b.uptimeBps ^= uint16(delta);
        else if (field == 6) b.faultFlags ^= uint32(delta);
        else b.telemetryHash = bytes32(uint256(b.telemetryHash) ^ delta);
        uint256 key = oracleKeys[field % oracleKeys.length];
        bytes memory sigA = _signAs(key, a);
        bytes memory sigB = _signAs(key, b);
        (address operator,) = registry.proveEquivocation(a, sigA, b, sigB);
        assertEq(operator, vm.addr(key), "the signer is slashed");

        UsageReport memory resigned = a;
        resigned.signerSetVersion = a.signerSetVersion + 1 + uint32(bound(versionDelta, 0, 1_000));
        bytes memory sigR = _signAs(key, resigned);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_SameReport.selector, a.rentalId, a.sequence));
        registry.proveEquivocation(a, sigA, resigned, sigR);
    }

    /// @dev sync credits exactly what it pulled plus what was carried: reserve + shares + carry.
    function testFuzz_sync_creditsExactlyWhatItPulled(uint72 price, uint8 slashedMembers) public {
        slashedMembers = uint8(bound(slashedMembers, 0, oracleKeys.length));
        for (uint256 i = 0; i < slashedMembers; i++) {
            (UsageReport memory a, UsageReport memory b) = (_report(3, 1, 60, 1), _report(3, 1, 60, 2));
            bytes memory sigA = _signAs(oracleKeys[i], a);
            bytes memory sigB = _signAs(oracleKeys[i], b);
            registry.proveEquivocation(a, sigA, b, sigB); // 50 % slash: below the minimum
        }
        _earnFees(uint72(bound(price, 1e6, 5_000e6)));
        uint256 pending = registry.pendingFees(address(usd));
        uint256 before;
        for (uint256 i = 0; i < oracleKeys.length; i++) {
            before += registry.balanceOf(_operator(i), address(usd));
        }
        registry.sync(address(usd));
        uint256 credited;
        for (uint256 i = 0; i < oracleKeys.length; i++) {
            uint256 balance = registry.balanceOf(_operator(i), address(usd));
            if (i < slashedMembers) assertEq(balance, 0, "unbonded member gets nothing");
            credited += balance;
        }
        credited -= before;
        assertEq(
            credited + registry.rebateReserve(address(usd)) + registry.pendingFees(address(usd)),
            pending,
            "shares + reserve + carry == pulled + carried"
        );
        uint256 bondedMembers = oracleKeys.length - slashedMembers;
        assertLt(registry.pendingFees(address(usd)), bondedMembers == 0 ? type(uint256).max : bondedMembers,
            "the carry is only the division remainder");
    }

    /// @dev Unbonded tokens never come out before the delay, and always after it.
    function testFuzz_completeUnbond_onlyAfterTheDelay(uint256 amount, uint256 wait) public {
        address operator = address(0xD00D);
        amount = bound(amount, 1, type(uint96).max);
        wait = bound(wait, 0, 2 * uint256(OP_UNBONDING_DELAY));
        _bond(operator, amount);
        vm.prank(operator);
        registry.requestUnbond(amount);
        vm.warp(block.timestamp + wait);
        vm.prank(operator);
        if (wait < OP_UNBONDING_DELAY) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IOperatorRegistry.OperatorRegistry_NotUnbonded.selector,
                    operator,
                    block.timestamp - wait + OP_UNBONDING_DELAY
                )
            );
            registry.completeUnbond();
        } else {
            assertEq(registry.completeUnbond(), amount, "all of it returned");
            assertEq(bondToken.balanceOf(operator), amount, "received");
        }
    }
}
