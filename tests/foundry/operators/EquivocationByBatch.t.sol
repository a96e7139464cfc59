// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IOperatorRegistry} from "../../../interfaces/IOperatorRegistry.sol";
import {IGpuRentMarket} from "../../../interfaces/IGpuRentMarket.sol";
import {EquivocationEvidence} from "../../../contracts/operators/EquivocationEvidence.sol";
import {SignedReport} from "../../../contracts/types/OperatorTypes.sol";
import {UsageReport} from "../../../contracts/types/DataTypes.sol";
import {OperatorFixture} from "../utils/OperatorFixture.sol";
import {ReportSigning} from "../utils/ReportSigning.sol";

/// @notice Issue 9: a batch signature is evidence of equivocation. What a node signs for
/// settleBatch is the EIP-712 digest of UsageReportBatch(reports); a report signed inside such a
/// batch that conflicts with another signed report (alone, or in another batch, or in the same
/// batch) for the same rental and sequence slashes the signer's bond and rewards the prover.
contract EquivocationByBatchTest is OperatorFixture {
    uint256 internal key;
    address internal signer;

    function setUp() public {
        _deployRegistry();
        key = oracleKeys[1];
        signer = vm.addr(key);
    }

    /// @dev A batch of `count` reports of rentals 100.. with `report` at `index`.
    function _batchWith(UsageReport memory report, uint256 index, uint256 count)
        internal
        view
        returns (UsageReport[] memory reports)
    {
        reports = new UsageReport[](count);
        for (uint256 i = 0; i < count; i++) {
            reports[i] = i == index ? report : _report(100 + i, 1, 60, 42_000_000);
        }
    }

    function _hashes(UsageReport[] memory reports) internal pure returns (bytes32[] memory hashes) {
        hashes = new bytes32[](reports.length);
        for (uint256 i = 0; i < reports.length; i++) {
            hashes[i] = ReportSigning.hashUsageReport(reports[i]);
        }
    }

    /// @dev Evidence for `report` signed by `key_` inside a batch of `count` at `index`.
    function _inBatch(uint256 key_, UsageReport memory report, uint256 index, uint256 count)
        internal
        view
        returns (SignedReport memory evidence)
    {
        UsageReport[] memory reports = _batchWith(report, index, count);
        evidence = SignedReport({
            report: report,
            batchReportHashes: _hashes(reports),
            batchIndex: index,
            signature: ReportSigning.signOne(key_, ReportSigning.batchDigest(reports, address(market)))
        });
    }

    /// @dev Evidence for `report` signed alone by `key_`.
    function _alone(uint256 key_, UsageReport memory report) internal view returns (SignedReport memory evidence) {
        evidence = SignedReport({
            report: report,
            batchReportHashes: new bytes32[](0),
            batchIndex: 0,
            signature: _signAs(key_, report)
        });
    }

    function _conflict() internal view returns (UsageReport memory a, UsageReport memory b) {
        a = _report(7, 3, 600, 1_000_000);
        b = _report(7, 3, 600, 2_000_000);
    }

    function _prove(SignedReport memory a, SignedReport memory b) internal returns (address operator, uint256 slashed) {
        vm.prank(prover);
        return registry.proveEquivocationSigned(a, b);
    }

    function _expectSlashed(address operator, uint256 slashed) internal view {
        uint256 slash = MIN_BOND * OP_SLASH_BPS / 10_000;
        uint256 reward = slash * PROVER_REWARD_BPS / 10_000;
        assertEq(operator, signer, "the signer is the equivocator");
        assertEq(slashed, slash, "slashBps of its bond");
        assertEq(registry.bondOf(signer).active, MIN_BOND - slash, "bond reduced");
        assertEq(registry.balanceOf(prover, address(bondToken)), reward, "prover rewarded");
        assertEq(registry.balanceOf(opTreasury, address(bondToken)), slash - reward, "treasury share");
        assertTrue(registry.equivocationProven(signer, 7, 3), "recorded");
    }

    // ------------------------------------------------------------------ the digest is the market's

    function test_batchDigest_isTheMarketsUsageBatchDigest() public view {
        (UsageReport memory a,) = _conflict();
        UsageReport[] memory reports = _batchWith(a, 1, 3);
        bytes32 batchHash = keccak256(
            abi.encode(EquivocationEvidence.USAGE_REPORT_BATCH_TYPEHASH, keccak256(abi.encodePacked(_hashes(reports))))
        );
        bytes32 domain = EquivocationEvidence.domainSeparator(IGpuRentMarket(address(market)));
        assertEq(ReportSigning.toTypedDataHash(domain, batchHash), market.usageBatchDigest(reports), "batch digest");
        assertEq(domain, ReportSigning.domainSeparator(block.chainid, address(market)), "domain");
    }

    // ------------------------------------------------------------------ proofs

    function test_proveEquivocationSigned_aBatchSignatureAgainstASingleOne_slashesAndRewards() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        vm.expectEmit(address(registry));
        uint256 slash = MIN_BOND * OP_SLASH_BPS / 10_000;
        emit IOperatorRegistry.EquivocationProven(
            signer, 7, 3, prover, address(bondToken), slash, slash * PROVER_REWARD_BPS / 10_000
        );
        (address operator, uint256 slashed) = _prove(_inBatch(key, a, 2, 4), _alone(key, b));
        _expectSlashed(operator, slashed);
    }

    function test_proveEquivocationSigned_bothReportsInBatches() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        (address operator, uint256 slashed) = _prove(_inBatch(key, a, 0, 2), _inBatch(key, b, 4, 5));
        _expectSlashed(operator, slashed);
    }

    function test_proveEquivocationSigned_twoConflictingReportsInOneBatch() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        UsageReport[] memory reports = new UsageReport[](2);
        reports[0] = a;
        reports[1] = b;
        bytes memory signature = ReportSigning.signOne(key, ReportSigning.batchDigest(reports, address(market)));
        bytes32[] memory hashes = _hashes(reports);
        (address operator, uint256 slashed) =
            _prove(SignedReport(a, hashes, 0, signature), SignedReport(b, hashes, 1, signature));
        _expectSlashed(operator, slashed);
    }

    function test_proveEquivocationSigned_singleSignaturesWorkAsProveEquivocation() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        (address operator, uint256 slashed) = _prove(_alone(key, a), _alone(key, b));
        _expectSlashed(operator, slashed);
    }

    function test_RevertWhen_proveEquivocationSigned_alreadyProvenWithSingleSignatures() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        bytes memory sigA = _signAs(key, a);
        bytes memory sigB = _signAs(key, b);
        registry.proveEquivocation(a, sigA, b, sigB);
        SignedReport memory ea = _inBatch(key, a, 0, 3);
        SignedReport memory eb = _alone(key, b);
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_AlreadyProven.selector, signer, uint256(7), uint64(3))
        );
        _prove(ea, eb);
    }

    function test_RevertWhen_proveEquivocationSigned_reportNotAtTheIndex() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        SignedReport memory ea = _inBatch(key, a, 1, 3);
        ea.batchIndex = 2;
        SignedReport memory eb = _alone(key, b);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_NotInBatch.selector, uint256(7), uint256(2)));
        _prove(ea, eb);
    }

    function test_RevertWhen_proveEquivocationSigned_indexOutsideTheBatch() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        SignedReport memory ea = _inBatch(key, a, 1, 3);
        ea.batchIndex = 3;
        SignedReport memory eb = _alone(key, b);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_NotInBatch.selector, uint256(7), uint256(3)));
        _prove(ea, eb);
    }

    /// @dev A batch that does not hold the report: its hash swapped in at the index makes the
    /// signature recover to some other key (the batch the operator signed is not this one).
    function test_RevertWhen_proveEquivocationSigned_batchHashesAreNotWhatWasSigned() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        SignedReport memory ea = _inBatch(key, a, 1, 3);
        ea.batchReportHashes[0] = keccak256("another report");
        SignedReport memory eb = _alone(key, b);
        vm.expectRevert(); // DifferentSigners(some recovered key, signer): the recovered key is arbitrary
        _prove(ea, eb);
        assertEq(registry.bondOf(signer).active, MIN_BOND, "nothing slashed");
    }

    function test_RevertWhen_proveEquivocationSigned_batchSignedForAnotherChain() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        UsageReport[] memory reports = _batchWith(a, 0, 2);
        bytes32 foreignDomain = ReportSigning.domainSeparator(block.chainid + 1, address(market));
        bytes32 batchHash = ReportSigning.hashUsageBatch(reports);
        SignedReport memory ea = SignedReport(
            a, _hashes(reports), 0, ReportSigning.signOne(key, ReportSigning.toTypedDataHash(foreignDomain, batchHash))
        );
        SignedReport memory eb = _alone(key, b);
        vm.expectRevert();
        _prove(ea, eb);
        assertEq(registry.bondOf(signer).active, MIN_BOND, "nothing slashed");
    }

    function test_RevertWhen_proveEquivocationSigned_sameContentInABatch() public {
        (UsageReport memory a,) = _conflict();
        UsageReport memory resigned = a;
        SignedReport memory ea = _inBatch(key, a, 0, 2);
        resigned.signerSetVersion = a.signerSetVersion + 1; // re-signed for a new set: not a conflict
        SignedReport memory eb = _alone(key, resigned);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_SameReport.selector, uint256(7), uint64(3)));
        _prove(ea, eb);
    }

    function test_RevertWhen_proveEquivocationSigned_twoDifferentSigners() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        SignedReport memory ea = _inBatch(key, a, 0, 2);
        SignedReport memory eb = _inBatch(oracleKeys[2], b, 0, 2);
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry_DifferentSigners.selector, signer, _operator(2))
        );
        _prove(ea, eb);
    }

    function test_RevertWhen_proveEquivocationSigned_otherSequence() public {
        (UsageReport memory a, UsageReport memory b) = _conflict();
        b.sequence = 4;
        SignedReport memory ea = _inBatch(key, a, 0, 2);
        SignedReport memory eb = _inBatch(key, b, 1, 2);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry_DifferentSlot.selector, uint256(7), uint64(3), uint256(7), uint64(4)
            )
        );
        _prove(ea, eb);
    }
}
