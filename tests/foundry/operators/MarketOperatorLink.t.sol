// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IGpuRentMarket} from "../../../interfaces/IGpuRentMarket.sol";
import {IOracleQuorum} from "../../../interfaces/IOracleQuorum.sol";
import {OperatorFixture} from "../utils/OperatorFixture.sol";
import {ReportSigning} from "../utils/ReportSigning.sol";

/// @notice The market's side of the operator registry: governance links it, setSignerSet
/// requires bonded signers, finalizeRental credits the operators' share of the fee.
contract MarketOperatorLinkTest is OperatorFixture {
    function setUp() public {
        _deployRegistry();
    }

    function test_setOperatorRegistry_linksTheRegistryAndItsShare() public view {
        (address linked, uint16 share) = market.operatorRegistry();
        assertEq(linked, address(registry), "registry");
        assertEq(share, OP_FEE_SHARE_BPS, "share");
    }

    function test_RevertWhen_setOperatorRegistry_shareOutOfRange() public {
        bytes memory invalid =
            abi.encodeWithSelector(IGpuRentMarket.GpuRentMarket_InvalidParam.selector, "operatorFeeShareBps");
        vm.startPrank(governance);
        vm.expectRevert(invalid);
        market.setOperatorRegistry(address(registry), 10_001);
        vm.expectRevert(invalid); // a share without a registry
        market.setOperatorRegistry(address(0), 1);
        vm.stopPrank();
    }

    function test_RevertWhen_setOperatorRegistry_callerIsNotGovernance() public {
        vm.expectRevert(
            abi.encodeWithSignature(
                "AccessControlUnauthorizedAccount(address,bytes32)", address(this), market.GOVERNANCE_ROLE()
            )
        );
        market.setOperatorRegistry(address(0), 0);
    }

    function test_RevertWhen_setSignerSet_aSignerHasNoBond() public {
        uint256[] memory keys = new uint256[](4);
        for (uint256 i = 0; i < 3; i++) {
            keys[i] = oracleKeys[i];
        }
        keys[3] = uint256(keccak256("unbonded oracle")) % ReportSigning.SECP256K1_N;
        address[] memory signers = ReportSigning.sortedAddresses(keys);
        uint256 index;
        while (signers[index] != vm.addr(keys[3])) index++;
        vm.expectRevert(
            abi.encodeWithSelector(IOracleQuorum.OracleQuorum_SignerNotBonded.selector, index, vm.addr(keys[3]))
        );
        vm.prank(governance);
        market.setSignerSet(signers, 3);

        _bond(vm.addr(keys[3]), MIN_BOND); // bonded: accepted
        vm.prank(governance);
        market.setSignerSet(signers, 3);
        assertTrue(market.isSigner(vm.addr(keys[3])), "installed once bonded");
    }

    function test_setSignerSet_withoutARegistry_needsNoBond() public {
        vm.prank(governance);
        market.setOperatorRegistry(address(0), 0);
        uint256[] memory keys = new uint256[](1);
        keys[0] = uint256(keccak256("unbonded oracle")) % ReportSigning.SECP256K1_N;
        _installSigners(keys, 1);
        assertTrue(market.isSigner(vm.addr(keys[0])), "installed");
    }

    function test_finalizeRental_creditsTheOperatorsShareOfTheFeeToTheRegistry() public {
        uint256 treasuryBefore = market.withdrawable(treasury, address(usd));
        uint256 rentalId = _finalizedRental(BIG_PRICE);
        uint256 fee = uint256(market.getRental(rentalId).paid) * FEE_BPS / 10_000;
        uint256 operators = fee * OP_FEE_SHARE_BPS / 10_000;
        assertGt(operators, 0, "a share to split");
        assertEq(market.withdrawable(address(registry), address(usd)), operators, "operators' share");
        assertEq(market.withdrawable(treasury, address(usd)) - treasuryBefore, fee - operators, "treasury: the rest");
        registry.sync(address(usd)); // and the registry pulls it
        assertEq(market.withdrawable(address(registry), address(usd)), 0, "pulled");
    }

    function testFuzz_finalizeRental_feeSplitConserves(uint16 shareBps, uint72 price) public {
        shareBps = uint16(bound(shareBps, 0, 10_000));
        price = uint72(bound(price, 1e6, 10_000e6));
        vm.prank(governance);
        market.setOperatorRegistry(address(registry), shareBps);
        uint256 treasuryBefore = market.withdrawable(treasury, address(usd));
        uint256 rentalId = _finalizedRental(price);
        uint256 fee = uint256(market.getRental(rentalId).paid) * FEE_BPS / 10_000;
        uint256 operators = market.withdrawable(address(registry), address(usd));
        assertEq(operators, fee * shareBps / 10_000, "floor(fee * share)");
        assertEq(operators + market.withdrawable(treasury, address(usd)) - treasuryBefore, fee, "nothing lost");
    }

    function _finalizedRental(uint72 price) internal returns (uint256 rentalId) {
        rentalId = _activeRental(1, price, 0, uint256(price) * 2);
        vm.warp(block.timestamp + 1 hours);
        _settle(rentalId, 1, 3600, 0);
        vm.prank(renter);
        market.endRental(rentalId);
        vm.warp(block.timestamp + SETTLEMENT_GRACE + 1);
        vm.prank(provider);
        market.finalizeRental(rentalId);
    }
}
