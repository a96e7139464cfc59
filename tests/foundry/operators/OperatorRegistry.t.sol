// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IOperatorRegistry} from "../../../interfaces/IOperatorRegistry.sol";
import {OperatorRegistry} from "../../../contracts/operators/OperatorRegistry.sol";
import {OperatorBond, OperatorParams} from "../../../contracts/types/OperatorTypes.sol";
import {UsageReport} from "../../../contracts/types/DataTypes.sol";
import {FeeOnTransferToken} from "../../../contracts/test/FeeOnTransferToken.sol";
import {TestStablecoin} from "../../../contracts/test/TestStablecoin.sol";
import {OperatorFixture} from "../utils/OperatorFixture.sol";
import {ReportSigning} from "../utils/ReportSigning.sol";

/// @notice OperatorRegistry: bonds, fee shares, settlement rebates, equivocation proofs.
contract OperatorRegistryTest is OperatorFixture {
    address internal stranger = address(0x5757);

    function setUp() public {
        _deployRegistry();
    }

    /*//////////////////////////////////////////////////////////////
                                 BONDS
    //////////////////////////////////////////////////////////////*/

    function test_bond_makesOperatorBondedAndCountsTotal() public view {
        for (uint256 i = 0; i < oracleKeys.length; i++) {
            assertTrue(registry.isBonded(_operator(i)), "oracle operator bonded");
            assertEq(registry.bondOf(_operator(i)).active, MIN_BOND, "active bond");
        }
        assertEq(registry.totalBonded(address(bondToken)), MIN_BOND * oracleKeys.length, "total bonded");
        assertEq(bondToken.balanceOf(address(registry)), MIN_BOND * oracleKeys.length, "tokens held");
        assertFalse(registry.isBonded(stranger), "stranger not bonded");
    }

    function test_isBonded_falseBelowMinimum() public {
        _bond(stranger, MIN_BOND - 1);
        assertFalse(registry.isBonded(stranger), "below minimum");
        _bond(stranger, 1);
        assertTrue(registry.isBonded(stranger), "at minimum");
    }

    function test_isBonded_falseOnceGovernanceDisallowsTheToken() public {
        vm.prank(governance);
        registry.setBondToken(address(bondToken), 0);
        assertFalse(registry.isBonded(_operator(0)), "disallowed token does not count");
    }

    function test_RevertWhen_bond_tokenNotAllowed() public {
        TestStablecoin other = new TestStablecoin();
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_TokenNotAllowed.selector, address(other)));
        vm.prank(stranger);
        registry.bond(address(other), 1);
    }

    function test_RevertWhen_bond_anotherTokenWhileBonded() public {
        TestStablecoin other = new TestStablecoin();
        vm.prank(governance);
        registry.setBondToken(address(other), 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry_BondTokenMismatch.selector, address(bondToken), address(other)
            )
        );
        vm.prank(_operator(0));
        registry.bond(address(other), 1);
    }

    function test_RevertWhen_bond_zeroAmount() public {
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_InvalidAmount.selector, 0));
        vm.prank(stranger);
        registry.bond(address(bondToken), 0);
    }

    function test_RevertWhen_bond_feeOnTransferToken() public {
        FeeOnTransferToken fot = new FeeOnTransferToken("fee", "FOT", 6, 100);
        vm.prank(governance);
        registry.setBondToken(address(fot), 1);
        fot.mint(stranger, 10_000);
        vm.startPrank(stranger);
        fot.approve(address(registry), 10_000);
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_TransferShortfall.selector, address(fot), 10_000, 9_900)
        );
        registry.bond(address(fot), 10_000);
        vm.stopPrank();
    }

    function test_RevertWhen_requestUnbond_whileInSignerSet() public {
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_InSignerSet.selector, _operator(0)));
        vm.prank(_operator(0));
        registry.requestUnbond(1);
    }

    function test_unbond_afterRotationOutAndDelay_returnsTheBond() public {
        address leaver = _rotateOut(0);
        vm.prank(leaver);
        registry.requestUnbond(MIN_BOND);
        assertFalse(registry.isBonded(leaver), "unbonding does not count");
        OperatorBond memory b = registry.bondOf(leaver);
        assertEq(b.unbonding, MIN_BOND, "unbonding");
        assertEq(b.unbondingReleaseAt, block.timestamp + OP_UNBONDING_DELAY, "release time");

        vm.warp(block.timestamp + OP_UNBONDING_DELAY - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry_NotUnbonded.selector, leaver, block.timestamp + 1
            )
        );
        vm.prank(leaver);
        registry.completeUnbond();

        vm.warp(block.timestamp + 1);
        vm.prank(leaver);
        assertEq(registry.completeUnbond(), MIN_BOND, "returned");
        assertEq(bondToken.balanceOf(leaver), MIN_BOND, "tokens back");
        assertEq(registry.bondOf(leaver).token, address(0), "bond cleared");
        assertEq(registry.totalBonded(address(bondToken)), MIN_BOND * (oracleKeys.length - 1), "total");
    }

    function test_RevertWhen_requestUnbond_moreThanActive() public {
        address leaver = _rotateOut(0);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_InvalidAmount.selector, MIN_BOND + 1));
        vm.prank(leaver);
        registry.requestUnbond(MIN_BOND + 1);
    }

    /*//////////////////////////////////////////////////////////////
                                 FEES
    //////////////////////////////////////////////////////////////*/

    function test_sync_refillsReserveThenSplitsEquallyAmongBondedSigners() public {
        uint256 fee = _earnFees(BIG_PRICE);
        uint256 target = uint256(REBATE_PER_REPORT) * registry.REBATE_RESERVE_REPORTS();
        assertGt(fee, target, "fee larger than the reserve target");
        assertEq(registry.pendingFees(address(usd)), fee, "pending before sync");

        vm.prank(stranger); // anyone may sync
        assertEq(registry.sync(address(usd)), fee, "pulled");

        uint256 share = (fee - target) / oracleKeys.length;
        for (uint256 i = 0; i < oracleKeys.length; i++) {
            assertEq(registry.balanceOf(_operator(i), address(usd)), share, "equal share");
        }
        assertEq(registry.rebateReserve(address(usd)), target, "reserve filled");
        assertEq(registry.pendingFees(address(usd)), fee - target - share * oracleKeys.length, "remainder carried");
        assertEq(market.withdrawable(address(registry), address(usd)), 0, "market balance pulled");
    }

    function test_sync_skipsSignersWhoseBondFellBelowMinimum() public {
        _proveOneEquivocation(0); // slashes half of operator 0's bond: below the minimum
        assertFalse(registry.isBonded(_operator(0)), "slashed below minimum");
        _fillReserve();
        uint256 before0 = registry.balanceOf(_operator(0), address(usd));
        uint256 before1 = registry.balanceOf(_operator(1), address(usd));
        uint256 carried = registry.pendingFees(address(usd));
        uint256 fee = _earnFees(100_000_000);
        registry.sync(address(usd));
        assertEq(registry.balanceOf(_operator(0), address(usd)), before0, "unbonded member gets nothing");
        uint256 share = (carried + fee) / (oracleKeys.length - 1);
        assertEq(registry.balanceOf(_operator(1), address(usd)), before1 + share, "bonded member's share");
    }

    function test_sync_carriesEverythingWhenNoSignerIsBonded() public {
        vm.prank(governance);
        registry.setBondToken(address(bondToken), 0);
        uint256 fee = _earnFees(BIG_PRICE);
        registry.sync(address(usd));
        uint256 carried = fee - uint256(REBATE_PER_REPORT) * registry.REBATE_RESERVE_REPORTS();
        assertEq(registry.pendingFees(address(usd)), carried, "all but the reserve carried");
        assertEq(registry.balanceOf(_operator(0), address(usd)), 0, "nobody credited");
        vm.prank(governance);
        registry.setBondToken(address(bondToken), MIN_BOND);
        registry.sync(address(usd));
        assertEq(registry.balanceOf(_operator(0), address(usd)), carried / oracleKeys.length, "paid at the next sync");
    }

    function test_sync_releasesTheReserveOfAFormerRebateToken() public {
        _fillReserve();
        uint256 reserve = registry.rebateReserve(address(usd));
        assertGt(reserve, 0, "reserve filled");
        OperatorParams memory p = _operatorParams();
        p.rebateToken = address(0);
        p.rebatePerReport = 0;
        vm.prank(governance);
        registry.setParams(p); // rebates switched off
        uint256 before = registry.balanceOf(_operator(0), address(usd));
        uint256 carried = registry.pendingFees(address(usd));
        registry.sync(address(usd));
        assertEq(registry.rebateReserve(address(usd)), 0, "released");
        assertEq(registry.balanceOf(_operator(0), address(usd)) - before, (reserve + carried) / oracleKeys.length,
            "shared among the operators");
    }

    function test_sync_withNothingPending_changesNothing() public {
        assertEq(registry.sync(address(usd)), 0, "nothing pulled");
        assertEq(registry.balanceOf(_operator(0), address(usd)), 0, "nothing credited");
    }

    function test_withdraw_paysTheCallersBalance() public {
        _earnFees(BIG_PRICE);
        registry.sync(address(usd));
        uint256 balance = registry.balanceOf(_operator(2), address(usd));
        vm.prank(_operator(2));
        assertEq(registry.withdraw(address(usd)), balance, "withdrawn");
        assertEq(usd.balanceOf(_operator(2)), balance, "received");
        assertEq(registry.balanceOf(_operator(2), address(usd)), 0, "zeroed");
    }

    function test_RevertWhen_withdraw_nothing() public {
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_NothingToWithdraw.selector, stranger, address(usd))
        );
        vm.prank(stranger);
        registry.withdraw(address(usd));
    }

    /*//////////////////////////////////////////////////////////////
                          SETTLEMENT REBATES
    //////////////////////////////////////////////////////////////*/

    function test_settleFor_settlesOnTheMarketAndAccruesARebateClaimedFromTheReserve() public {
        _fillReserve();
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 600);
        UsageReport memory report = _report(rentalId, 1, 600, 0);
        bytes memory signatures = _signUsage(report);
        uint256 reserve = registry.rebateReserve(address(usd));
        uint256 balance = registry.balanceOf(_operator(1), address(usd));
        vm.prank(_operator(1));
        assertEq(registry.settleFor(report, signatures), 1, "one report counted");
        assertEq(market.getRental(rentalId).sequence, 1, "settled on the market");
        assertEq(registry.bondOf(_operator(1)).rebateReports, 1, "accrued");

        vm.prank(_operator(1));
        assertEq(registry.claimRebates(), REBATE_PER_REPORT, "claimed");
        assertEq(registry.balanceOf(_operator(1), address(usd)), balance + REBATE_PER_REPORT, "credited");
        assertEq(registry.rebateReserve(address(usd)), reserve - REBATE_PER_REPORT, "drawn from the reserve");
        assertEq(registry.bondOf(_operator(1)).rebateReports, 0, "nothing left accrued");
    }

    function test_RevertWhen_settleFor_callerIsNotABondedSigner() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 600);
        UsageReport memory report = _report(rentalId, 1, 600, 0);
        bytes memory signatures = _signUsage(report);
        _bond(stranger, MIN_BOND); // bonded, but not in the signer set
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_NotBondedSigner.selector, stranger));
        vm.prank(stranger);
        registry.settleFor(report, signatures);
    }

    function test_RevertWhen_settleFor_signerWhoseBondFellBelowMinimum() public {
        _proveOneEquivocation(1);
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 600);
        UsageReport memory report = _report(rentalId, 1, 600, 0);
        bytes memory signatures = _signUsage(report);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_NotBondedSigner.selector, _operator(1)));
        vm.prank(_operator(1));
        registry.settleFor(report, signatures);
    }

    function test_RevertWhen_settleFor_reportAlreadySettled() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 600);
        UsageReport memory report = _report(rentalId, 1, 600, 0);
        bytes memory signatures = _signUsage(report);
        vm.prank(keeper);
        market.settle(report, signatures);
        vm.expectRevert(); // the market's UsageSettlement_StaleSequence
        vm.prank(_operator(1));
        registry.settleFor(report, signatures);
        assertEq(registry.bondOf(_operator(1)).rebateReports, 0, "no rebate for a stale report");
    }

    function test_settleBatchFor_countsOnlyRentalsTheCallSettled() public {
        uint256 a = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        uint256 b = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        uint256 c = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        uint256 d = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 600);
        _settle(c, 1, 600, 0); // c's report was settled by someone else, in an earlier block
        vm.warp(block.timestamp + 12);
        vm.prank(renter);
        market.endRental(d);
        vm.warp(block.timestamp + SETTLEMENT_GRACE + 1); // d can no longer settle
        UsageReport[] memory reports = new UsageReport[](5);
        reports[0] = _report(a, 1, 600, 0);
        reports[1] = _report(b, 1, 600, 0);
        reports[2] = _report(c, 1, 600, 0); // stale: skipped, not counted
        reports[3] = _report(a, 1, 600, 0); // the same rental again: counted once
        reports[4] = _report(d, 1, 600, 0); // unsettleable: skipped, not counted
        bytes memory signatures = _signBatch(reports);
        vm.prank(_operator(3));
        assertEq(registry.settleBatchFor(reports, signatures), 2, "two rentals settled by this call");
        assertEq(registry.bondOf(_operator(3)).rebateReports, 2, "accrued");
        // The same batch again settles nothing: the market reverts, nothing accrues.
        vm.expectRevert();
        vm.prank(_operator(3));
        registry.settleBatchFor(reports, signatures);
    }

    function test_claimRebates_paysWhatTheReserveCoversAndKeepsTheRest() public {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 600);
        UsageReport memory report = _report(rentalId, 1, 600, 0);
        bytes memory signatures = _signUsage(report);
        vm.prank(_operator(1));
        registry.settleFor(report, signatures);
        vm.prank(_operator(1));
        assertEq(registry.claimRebates(), 0, "empty reserve pays nothing");
        assertEq(registry.bondOf(_operator(1)).rebateReports, 1, "still accrued");
        _fillReserve();
        vm.prank(_operator(1));
        assertEq(registry.claimRebates(), REBATE_PER_REPORT, "paid once the reserve is filled");
    }

    function test_RevertWhen_claimRebates_nothingAccrued() public {
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_NothingToWithdraw.selector, stranger, address(usd))
        );
        vm.prank(stranger);
        registry.claimRebates();
    }

    /*//////////////////////////////////////////////////////////////
                             EQUIVOCATION
    //////////////////////////////////////////////////////////////*/

    function test_proveEquivocation_slashesTheBondAndRewardsTheProver() public {
        uint256 key = oracleKeys[2];
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        bytes memory sigA = _signAs(key, a);
        bytes memory sigB = _signAs(key, b);
        uint256 slash = MIN_BOND * OP_SLASH_BPS / 10_000;
        uint256 reward = slash * PROVER_REWARD_BPS / 10_000;

        vm.expectEmit(true, true, true, true);
        emit IOperatorRegistry.EquivocationProven(
            vm.addr(key), a.rentalId, a.sequence, prover, address(bondToken), slash, reward
        );
        vm.prank(prover);
        (address operator, uint256 slashed) = registry.proveEquivocation(a, sigA, b, sigB);

        assertEq(operator, vm.addr(key), "operator");
        assertEq(slashed, slash, "slashed");
        assertEq(registry.bondOf(operator).active, MIN_BOND - slash, "bond reduced");
        assertEq(registry.balanceOf(prover, address(bondToken)), reward, "prover reward");
        assertEq(registry.balanceOf(opTreasury, address(bondToken)), slash - reward, "treasury share");
        assertTrue(registry.equivocationProven(operator, a.rentalId, a.sequence), "recorded");
        vm.prank(prover);
        registry.withdraw(address(bondToken));
        assertEq(bondToken.balanceOf(prover), reward, "prover paid");
    }

    function test_proveEquivocation_slashesAnUnbondingBond() public {
        address leaver = _rotateOut(0);
        vm.prank(leaver);
        registry.requestUnbond(MIN_BOND);
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        vm.prank(prover);
        registry.proveEquivocation(a, _signAs(oracleKeys[0], a), b, _signAs(oracleKeys[0], b));
        assertEq(registry.bondOf(leaver).unbonding, MIN_BOND - MIN_BOND * OP_SLASH_BPS / 10_000, "unbonding slashed");
    }

    function test_RevertWhen_proveEquivocation_replayed() public {
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        bytes memory sigA = _signAs(oracleKeys[1], a);
        bytes memory sigB = _signAs(oracleKeys[1], b);
        vm.prank(prover);
        registry.proveEquivocation(a, sigA, b, sigB);
        bytes memory expected = abi.encodeWithSelector(
            IOperatorRegistry.OperatorRegistry_AlreadyProven.selector, _operator(1), a.rentalId, a.sequence
        );
        vm.expectRevert(expected);
        registry.proveEquivocation(a, sigA, b, sigB);
        vm.expectRevert(expected); // the same pair swapped
        registry.proveEquivocation(b, sigB, a, sigA);
        // A third conflicting report for the same slot is the same offence.
        UsageReport memory c = b;
        c.energyMillijoules += 1;
        bytes memory sigC = _signAs(oracleKeys[1], c);
        vm.expectRevert(expected);
        registry.proveEquivocation(a, sigA, c, sigC);
    }

    function test_RevertWhen_proveEquivocation_equalReports() public {
        (UsageReport memory a,) = _conflictingReports();
        bytes memory sigA = _signAs(oracleKeys[0], a);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_SameReport.selector, a.rentalId, a.sequence));
        registry.proveEquivocation(a, sigA, a, sigA);
    }

    function test_RevertWhen_proveEquivocation_onlyTheSignerSetVersionDiffers() public {
        // A node re-signs an unchanged report for a new signer-set version after a rotation:
        // that is not equivocation.
        (UsageReport memory a,) = _conflictingReports();
        UsageReport memory resigned = a;
        resigned.signerSetVersion = a.signerSetVersion + 1;
        bytes memory sigA = _signAs(oracleKeys[0], a);
        bytes memory sigResigned = _signAs(oracleKeys[0], resigned);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_SameReport.selector, a.rentalId, a.sequence));
        registry.proveEquivocation(a, sigA, resigned, sigResigned);
    }

    function test_RevertWhen_proveEquivocation_otherRental() public {
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        b.rentalId = a.rentalId + 1;
        _expectDifferentSlot(a, b);
    }

    function test_RevertWhen_proveEquivocation_otherSequence() public {
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        b.sequence = a.sequence + 1;
        _expectDifferentSlot(a, b);
    }

    /// @dev `a` and `b`, both signed by operator 0, are refused as reports of different slots.
    function _expectDifferentSlot(UsageReport memory a, UsageReport memory b) internal {
        bytes memory sigA = _signAs(oracleKeys[0], a);
        bytes memory sigB = _signAs(oracleKeys[0], b);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry_DifferentSlot.selector, a.rentalId, a.sequence, b.rentalId, b.sequence
            )
        );
        registry.proveEquivocation(a, sigA, b, sigB);
    }

    function test_RevertWhen_proveEquivocation_twoDifferentSigners() public {
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        bytes memory sigA = _signAs(oracleKeys[0], a);
        bytes memory sigB = _signAs(oracleKeys[1], b);
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_DifferentSigners.selector, _operator(0), _operator(1))
        );
        registry.proveEquivocation(a, sigA, b, sigB);
    }

    function test_RevertWhen_proveEquivocation_signerHasNoBond() public {
        uint256 outsiderKey = uint256(keccak256("not an operator"));
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        bytes memory sigA = _signAs(outsiderKey, a);
        bytes memory sigB = _signAs(outsiderKey, b);
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_NotBonded.selector, vm.addr(outsiderKey))
        );
        registry.proveEquivocation(a, sigA, b, sigB);
    }

    function test_RevertWhen_proveEquivocation_signatureOverAnotherDomain() public {
        // Signed over the spec digest of another market address: recovers to some other address.
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        bytes memory sigA = _signAs(oracleKeys[0], a);
        bytes memory foreign = ReportSigning.signOne(oracleKeys[0], ReportSigning.usageDigest(b, address(0xdead)));
        vm.expectRevert(); // DifferentSigners with an unpredictable recovered address
        registry.proveEquivocation(a, sigA, b, foreign);
    }

    function test_RevertWhen_proveEquivocation_malformedOrHighSSignature() public {
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        bytes memory sigA = _signAs(oracleKeys[0], a);
        bytes memory sigB = _signAs(oracleKeys[0], b);
        bytes memory truncated = new bytes(64);
        vm.expectRevert(abi.encodeWithSignature("ECDSAInvalidSignatureLength(uint256)", 64));
        registry.proveEquivocation(a, sigA, b, truncated);
        // The malleable twin (s' = n - s, v flipped) of a valid signature is refused.
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sigB, 32))
            s := mload(add(sigB, 64))
            v := byte(0, mload(add(sigB, 96)))
        }
        bytes32 highS = bytes32(ReportSigning.SECP256K1_N - uint256(s));
        bytes memory twin = abi.encodePacked(r, highS, v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(abi.encodeWithSignature("ECDSAInvalidSignatureS(bytes32)", highS));
        registry.proveEquivocation(a, sigA, b, twin);
    }

    /*//////////////////////////////////////////////////////////////
                              GOVERNANCE
    //////////////////////////////////////////////////////////////*/

    function test_RevertWhen_setParams_outOfRange() public {
        // OperatorParams fields by position: treasury 0, slashBps 1, proverRewardBps 2,
        // unbondingDelay 3, rebateToken 4 (a wrong position names another field and fails).
        _expectInvalidParamField(0, 0, "treasury");
        _expectInvalidParamField(1, 0, "slashBps");
        _expectInvalidParamField(1, 10_001, "slashBps");
        _expectInvalidParamField(2, 5_001, "proverRewardBps");
        _expectInvalidParamField(3, 1 hours - 1, "unbondingDelay");
        _expectInvalidParamField(3, 365 days + 1, "unbondingDelay");
        _expectInvalidParamField(4, 0, "rebatePerReport"); // no rebate token with a rebate set
    }

    function _expectInvalidParamField(uint256 index, uint256 value, string memory field) internal {
        OperatorParams memory p = _operatorParams();
        uint256 ptr;
        assembly ("memory-safe") {
            ptr := p
        }
        _setMemoryWord(ptr, index, value);
        _expectInvalidParam(p, field);
    }

    function test_RevertWhen_setParams_callerIsNotGovernance() public {
        OperatorParams memory p = _operatorParams();
        vm.expectRevert(
            abi.encodeWithSignature(
                "AccessControlUnauthorizedAccount(address,bytes32)", stranger, registry.GOVERNANCE_ROLE()
            )
        );
        vm.prank(stranger);
        registry.setParams(p);
    }

    function test_RevertWhen_setBondToken_minimumAboveUint96() public {
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_InvalidParam.selector, "minBond"));
        vm.prank(governance);
        registry.setBondToken(address(bondToken), uint256(type(uint96).max) + 1);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function _expectInvalidParam(OperatorParams memory p, string memory field) internal {
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_InvalidParam.selector, field));
        vm.prank(governance);
        registry.setParams(p);
    }

    /// @dev Installs the signer set without oracle key `index` (threshold 3 of 4); returns it.
    function _rotateOut(uint256 index) internal returns (address leaver) {
        leaver = _operator(index);
        uint256[] memory keys = new uint256[](oracleKeys.length - 1);
        uint256 j;
        for (uint256 i = 0; i < oracleKeys.length; i++) {
            if (i != index) keys[j++] = oracleKeys[i];
        }
        _installSigners(keys, THRESHOLD);
    }

    /// @dev Two reports for rental 7, sequence 3 that differ in energy.
    function _conflictingReports() internal view returns (UsageReport memory a, UsageReport memory b) {
        a = _report(7, 3, 600, 1_000_000);
        b = _report(7, 3, 600, 2_000_000);
    }

    function _proveOneEquivocation(uint256 index) internal {
        (UsageReport memory a, UsageReport memory b) = _conflictingReports();
        vm.prank(prover);
        registry.proveEquivocation(a, _signAs(oracleKeys[index], a), b, _signAs(oracleKeys[index], b));
    }

    /// @dev Earns enough fees to fill the rebate reserve and syncs them.
    function _fillReserve() internal {
        _earnFees(BIG_PRICE);
        registry.sync(address(usd));
    }
}
