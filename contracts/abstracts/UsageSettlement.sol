// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Offer, Rental, RentalStatus, EndReason, UsageReport} from "../types/DataTypes.sol";
import {IUsageSettlement} from "../../interfaces/IUsageSettlement.sol";
import {RentalEscrow} from "./RentalEscrow.sol";

/// @title UsageSettlement
/// @notice Pays providers from escrow for quorum-signed cumulative usage reports.
/// @dev Gas design (measured by tools/gas_report.py, committed in reports/gas.json):
/// - A settlement touches two rental slots: slot 0 is read and written as ONE word (status,
///   sequence, lastSettledAt, availableGpuSeconds, uptimeBps, paid), slot 1 is read once
///   (prices and fee snapshotted at open, budget). Writing slot 0 field by field would cost
///   one extra warm SLOAD+SSTORE pair per field, so the word is composed in assembly with the
///   layout below, which is Solidity's layout of `Rental` (first member in the lowest bits).
/// - Provider and payment token come from the offer (immutable fields), which is warm when a
///   batch settles several rentals of one offer; so is the provider's balance slot.
/// - The protocol fee is not written per settlement: it is a function of the cumulative `paid`
///   and is credited to the treasury once, at finalization.
/// - The struct hash copies the 11 calldata words of the report next to the type hash and hashes
///   them, instead of re-encoding field by field. A report with dirty high-order bits hashes to
///   a digest no honest signer signed, so it fails the quorum check.
/// - Energy is not stored: cost(new) - cost(old) is computed as cost(new) - paid, since paid ==
///   cost(last settled report) until the budget is exhausted (which ends the rental).
/// - Signatures: signers strictly ascending instead of a seen-bitmap; one SLOAD per signer.
/// - Events: settleBatch logs ONE UsageBatchSettled (3 data words per report, 768 gas) instead
///   of a UsageSettled per report (log2 with 2 data words, 1,637 gas): 12,693 -> 11,898 gas per
///   report of a 100-report batch.
/// What bounds a batch report (measured): calldata of the 11-word ABI report ~2,060, rental
/// slot 0 cold read + write 5,000, slot 1 cold read 2,100, its 3 words of the batch log ~800:
/// ~10,000 before any hashing or arithmetic; the EIP-712 struct hash, checks, cost, packing and
/// the log entry add ~1,600, the transaction base and the quorum's 3 signature checks ~330 per
/// report of 100.
/// NOTE: a quorum that signs a report with lower cumulative energy than before only lowers the
/// payment (to zero); a lower availableGpuSeconds is rejected.
abstract contract UsageSettlement is IUsageSettlement, RentalEscrow {
    bytes32 internal constant USAGE_REPORT_TYPEHASH = keccak256(
        "UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,bytes32 telemetryHash,uint32 signerSetVersion)"
    );
    bytes32 internal constant USAGE_REPORT_BATCH_TYPEHASH = keccak256(
        "UsageReportBatch(UsageReport[] reports)UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,bytes32 telemetryHash,uint32 signerSetVersion)"
    );

    /// @dev keccak256("UsageSettled(uint256,uint256,uint256)") as a literal, for inline assembly
    /// (equal to IUsageSettlement.UsageSettled.selector; tests/brownie/test_smoke.py decodes the
    /// event the fast path emits through the ABI, which fails if they differ).
    uint256 private constant _USAGE_SETTLED_TOPIC = 0xd03d12e1ad8364f3d22f8633800f95b3ded5f3a5b3e13f97e24222c75dd32739;
    /// @dev keccak256("UsageBatchSettled(uint256[])"), likewise (tests/brownie/test_settlement.py
    /// decodes the batch event through the ABI).
    uint256 private constant _USAGE_BATCH_SETTLED_TOPIC = 0x14514352a412db2ff804e6de60497df9429cc4ce45e2d12d6c02441423006c2e;

    /// @dev Marks a deferred entry of _applyRun as "budget exhausted" rather than "not settled".
    uint256 private constant _EXHAUSTED_FLAG = 1 << 255;

    /// @dev ABI size of a UsageReport (11 static words).
    uint256 private constant _REPORT_SIZE = 352;
    uint256 private constant _SECONDS_PER_HOUR = 3600;
    uint256 private constant _MILLIJOULES_PER_KWH = 3_600_000_000;

    // Rental slot 0 (see DataTypes.Rental): bit offsets.
    uint256 private constant _S0_OFFER_ID_MASK = 0xffffffff << 8;
    uint256 private constant _S0_SEQUENCE = 40;
    uint256 private constant _S0_LAST_SETTLED_AT = 72;
    uint256 private constant _S0_AVAILABLE = 104;
    uint256 private constant _S0_UPTIME = 144;
    uint256 private constant _S0_PAID = 160;
    // Rental slot 1: bit offsets.
    uint256 private constant _S1_PRICE_PER_KWH = 72;
    uint256 private constant _S1_FEE_BPS = 144;
    uint256 private constant _S1_BUDGET = 160;
    uint256 private constant _MASK16 = 0xffff;
    uint256 private constant _MASK32 = 0xffffffff;
    uint256 private constant _MASK40 = 0xffffffffff;
    uint256 private constant _MASK72 = 0xffffffffffffffffff;

    /// @inheritdoc IUsageSettlement
    function settle(UsageReport calldata report, bytes calldata signatures) external nonReentrant {
        // Check:
        _verifyQuorum(_hashTypedDataV4(_usageReportStructHash(report)), signatures, report.signerSetVersion);
        // Effect: the fast path settles an Active rental's well-formed newer report; anything
        // else goes through _settle for the precise error (or an Ended rental's final report).
        (uint256 settled, uint256[] memory deferred) =
            _applyRun(_offsetOf(report), 1, uint256(RentalStatus.Active), false);
        if (settled == 0) {
            _settle(report, true);
        } else if (deferred.length != 0) {
            _end(report.rentalId, _rentals[report.rentalId], EndReason.BudgetExhausted);
        }
    }

    /// @inheritdoc IUsageSettlement
    function settleBatch(UsageReport[] calldata reports, bytes calldata signatures) external nonReentrant {
        uint256 count = reports.length;
        // Check:
        if (count == 0) revert UsageSettlement_NothingSettled();
        uint32 version = _signerSetVersion;
        _verifyQuorum(_hashTypedDataV4(_usageBatchStructHash(reports, version)), signatures, version);
        // Effect: one fast pass over all reports, then, in report order, the ends of rentals whose
        // budget ran out and the reports the fast pass left (skipped or settled by _settle).
        // The fast pass emits one UsageBatchSettled for all the reports it settles.
        (uint256 settled, uint256[] memory deferred) =
            _applyRun(_offsetOf(reports), count, uint256(RentalStatus.Active), true);
        for (uint256 k; k < deferred.length; ++k) {
            uint256 entry = deferred[k];
            if (entry & _EXHAUSTED_FLAG != 0) {
                uint256 rentalId = reports[entry ^ _EXHAUSTED_FLAG].rentalId;
                _end(rentalId, _rentals[rentalId], EndReason.BudgetExhausted);
            } else if (_settle(reports[entry], false)) {
                unchecked {
                    ++settled; // at most reports.length
                }
            }
        }
        if (settled == 0) revert UsageSettlement_NothingSettled();
    }

    /// @inheritdoc IUsageSettlement
    function usageReportDigest(UsageReport calldata report) external view returns (bytes32) {
        return _hashTypedDataV4(_usageReportStructHash(report));
    }

    /// @inheritdoc IUsageSettlement
    function usageBatchDigest(UsageReport[] calldata reports) external view returns (bytes32) {
        return _hashTypedDataV4(_usageBatchStructHash(reports, 0));
    }

    /// @inheritdoc IUsageSettlement
    function costOf(uint256 rentalId, uint256 availableGpuSeconds, uint256 energyMillijoules)
        external
        view
        returns (uint256)
    {
        Rental storage rental = _rentals[rentalId];
        return _cost(availableGpuSeconds, energyMillijoules, rental.pricePerGpuHour, rental.pricePerKwh);
    }

    /// @dev Settles one report whose quorum has been verified. Returns false (after emitting
    /// UsageReportSkipped) when `strict` is false and the report is stale or its rental cannot
    /// settle; reverts in those cases when `strict` is true. Malformed values always revert.
    function _settle(UsageReport calldata report, bool strict) private returns (bool) {
        Rental storage rental = _rentals[report.rentalId];
        uint256 word0;
        assembly ("memory-safe") {
            word0 := sload(rental.slot)
        }
        // Check: the rental can settle and the report is strictly newer than the last one.
        if (!_canSettle(rental, word0, report, strict)) {
            emit UsageReportSkipped(report.rentalId, report.sequence);
            return false;
        }
        // Effect: same arithmetic and write as the fast path, for the status found.
        (uint256 settled, uint256[] memory deferred) = _applyRun(_offsetOf(report), 1, word0 & 0xff, false);
        if (settled == 0) revert UsageSettlement_ValueOutOfRange(report.rentalId); // energy >= 2**128
        if (deferred.length != 0) _end(report.rentalId, rental, EndReason.BudgetExhausted);
        return true;
    }

    /// @dev Whether `report` may settle `rental` (slot 0 = `word0`): the rental is Active, or
    /// Ended within the settlement grace with periodEnd <= endedAt, and the sequence is above
    /// the last settled one. When `strict`, reverts instead of returning false. Also reverts on
    /// values that do not fit the rental's storage or available seconds going down.
    function _canSettle(Rental storage rental, uint256 word0, UsageReport calldata report, bool strict)
        private
        view
        returns (bool)
    {
        uint256 status = word0 & 0xff;
        if (status != uint256(RentalStatus.Active)) {
            bool settleable = status == uint256(RentalStatus.Ended);
            if (settleable) {
                uint256 endedAt = rental.endedAt;
                if (block.timestamp > endedAt + _rentalTerms[report.rentalId].settlementGrace) {
                    settleable = false;
                } else if (report.periodEnd > endedAt) {
                    if (strict) {
                        revert UsageSettlement_PeriodAfterEnd(report.rentalId, report.periodEnd, uint32(endedAt));
                    }
                    return false;
                }
            }
            if (!settleable) {
                if (strict) revert UsageSettlement_NotSettleable(report.rentalId, uint8(status));
                return false;
            }
        }
        uint256 sequence = report.sequence;
        uint256 lastSequence = (word0 >> _S0_SEQUENCE) & _MASK32;
        if (sequence <= lastSequence) {
            if (strict) revert UsageSettlement_StaleSequence(report.rentalId, uint64(sequence), uint32(lastSequence));
            return false;
        }
        uint256 available = report.availableGpuSeconds;
        if (sequence > _MASK32 || available > _MASK40 || report.uptimeBps > 10_000) {
            revert UsageSettlement_ValueOutOfRange(report.rentalId);
        }
        uint256 lastAvailable = (word0 >> _S0_AVAILABLE) & _MASK40;
        if (available < lastAvailable) {
            revert UsageSettlement_AvailableDecreased(report.rentalId, uint64(available), uint40(lastAvailable));
        }
        return true;
    }

    /// @dev cost(available, energy) of docs/protocol.md; floors favour the escrow.
    function _cost(uint256 available, uint256 energyMillijoules, uint256 pricePerGpuHour, uint256 pricePerKwh)
        private
        pure
        returns (uint256)
    {
        return available * pricePerGpuHour / _SECONDS_PER_HOUR + energyMillijoules * pricePerKwh / _MILLIJOULES_PER_KWH;
    }

    /// @dev hashStruct(UsageReport): keccak256(TYPEHASH || the report's 11 ABI words).
    function _usageReportStructHash(UsageReport calldata report) private pure returns (bytes32 structHash) {
        bytes32 typeHash = USAGE_REPORT_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typeHash)
            calldatacopy(add(ptr, 0x20), report, _REPORT_SIZE)
            structHash := keccak256(ptr, add(_REPORT_SIZE, 0x20))
        }
    }

    /// @dev hashStruct(UsageReportBatch): keccak256(BATCH_TYPEHASH || keccak256(hashStruct(r_0) ||
    /// ... || hashStruct(r_n-1))), EIP-712's encoding of an array of structs. When `version` is
    /// not 0, also reverts unless every report names signer-set `version`.
    function _usageBatchStructHash(UsageReport[] calldata reports, uint32 version) private pure returns (bytes32) {
        uint256 count = reports.length;
        bytes32 typeHash = USAGE_REPORT_TYPEHASH;
        bytes32 arrayHash;
        uint256 wrongVersionAt;
        // The struct hashes are written from the free memory pointer on and the report being
        // hashed is copied behind them; nothing is allocated, all of it is scratch. The ABI
        // decoder has checked that reports.offset + count * 352 lies within calldata.
        assembly ("memory-safe") {
            let hashes := mload(0x40)
            let scratch := add(hashes, mul(count, 0x20))
            mstore(scratch, typeHash)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let src := add(reports.offset, mul(i, _REPORT_SIZE))
                calldatacopy(add(scratch, 0x20), src, _REPORT_SIZE)
                mstore(add(hashes, mul(i, 0x20)), keccak256(scratch, add(_REPORT_SIZE, 0x20)))
                if and(iszero(iszero(version)), iszero(eq(calldataload(add(src, 320)), version))) {
                    wrongVersionAt := add(i, 1)
                    break
                }
            }
            arrayHash := keccak256(hashes, mul(count, 0x20))
        }
        if (wrongVersionAt != 0) {
            revert OracleQuorum_WrongSignerSetVersion(reports[wrongVersionAt - 1].signerSetVersion, version);
        }
        return keccak256(abi.encode(USAGE_REPORT_BATCH_TYPEHASH, arrayHash));
    }

    /// @dev Settlement proper, over `count` consecutive ABI-encoded UsageReports at calldata
    /// `offset`. Settles each report whose rental is in `expectedStatus` and which is newer and
    /// well-formed (sequence <= uint32, available <= uint40 and not below the last, energy <
    /// 2**128, uptime <= 10000): computes the payment, writes rental slot 0 as one word, and emits
    /// one UsageBatchSettled of all the reports it settled when `batch`, else (count is 1) the
    /// report's UsageSettled. Returns how many settled and, in report order, `deferred`: the
    /// index of each report left untouched (for _settle to skip, revert with the precise error,
    /// or settle an Ended rental), and `index | _EXHAUSTED_FLAG` for each whose rental's budget
    /// ran out (the caller records the end). Provider credits of consecutive reports of one
    /// offer are summed and written once.
    /// Written on raw words because it runs once per report of a batch: measured 16,397 gas per
    /// rental of a 100-report batch with the same logic in checked Solidity over the Rental
    /// struct, 12,693 with this and a UsageSettled log per report, 11,898 with one
    /// UsageBatchSettled per batch (reports/gas.json).
    function _applyRun(uint256 offset, uint256 count, uint256 expectedStatus, bool batch)
        private
        returns (uint256 settled, uint256[] memory deferred)
    {
        deferred = new uint256[](count);
        assembly ("memory-safe") {
            // _balances[offer.provider][offer.paymentToken] += amount. Cannot overflow: balances
            // only hold tokens this contract received, and token supplies are below 2**256.
            function creditProvider(offerId, amount, offers, balances) {
                if amount {
                    mstore(0x00, offerId)
                    mstore(0x20, offers)
                    let offerSlot := keccak256(0x00, 0x40)
                    mstore(0x00, and(sload(offerSlot), 0xffffffffffffffffffffffffffffffffffffffff))
                    mstore(0x20, balances)
                    mstore(0x20, keccak256(0x00, 0x40))
                    mstore(0x00, and(sload(add(offerSlot, 1)), 0xffffffffffffffffffffffffffffffffffffffff))
                    let balanceSlot := keccak256(0x00, 0x40)
                    sstore(balanceSlot, add(sload(balanceSlot), amount))
                }
            }

            function applyOne(report, status, rentals) -> ok, exhausted, offerId, providerCredit {
                let slot
                {
                    mstore(0x00, calldataload(report)) // rentalId
                    mstore(0x20, rentals)
                    slot := keccak256(0x00, 0x40)
                }
                let word0 := sload(slot)
                {
                    let sequence := calldataload(add(report, 0x20))
                    let available := calldataload(add(report, 0x60))
                    ok := and(eq(and(word0, 0xff), status), gt(sequence, and(shr(40, word0), 0xffffffff)))
                    ok := and(ok, iszero(or(gt(sequence, 0xffffffff), gt(available, 0xffffffffff))))
                    ok := and(ok, iszero(lt(available, and(shr(104, word0), 0xffffffffff))))
                }
                // uptime <= 10000 and energy < 2**128
                ok := and(ok, iszero(or(gt(calldataload(add(report, 0xe0)), 10000), shr(128, calldataload(add(report, 0xa0))))))
                if ok {
                    let word1 := sload(add(slot, 1))
                    let newPaid
                    {
                        let paid := shr(160, word0)
                        let budget := shr(160, word1)
                        // cost(new cumulative) = floor(available * pricePerGpuHour / 3600) +
                        // floor(energy * pricePerKwh / 3.6e9). No product overflows: available
                        // < 2**40, energy < 2**128, prices < 2**72.
                        let payment := add(
                            div(mul(calldataload(add(report, 0x60)), and(word1, 0xffffffffffffffffff)), 3600),
                            div(mul(calldataload(add(report, 0xa0)), and(shr(72, word1), 0xffffffffffffffffff)), 3600000000)
                        )
                        switch gt(payment, paid)
                        case 0 { payment := 0 }
                        default { payment := sub(payment, paid) }
                        // paid <= budget always holds, so budget - paid does not underflow.
                        if gt(payment, sub(budget, paid)) { payment := sub(budget, paid) }
                        newPaid := add(paid, payment)
                        // Only an Active rental ends on exhaustion (an Ended one already has).
                        exhausted := and(eq(newPaid, budget), eq(status, 2))
                        // This report's entry of the event data, where its first word points.
                        let entry := mload(mload(0x40))
                        mstore(entry, calldataload(report))
                        mstore(add(entry, 0x20), calldataload(add(report, 0x20)))
                        mstore(add(entry, 0x40), payment)
                    }
                    {
                        let paid := shr(160, word0)
                        let feeBps := and(shr(144, word1), 0xffff)
                        // paid - floor(paid * feeBps / 10000) never decreases as paid grows.
                        providerCredit := sub(
                            sub(newPaid, div(mul(newPaid, feeBps), 10000)), sub(paid, div(mul(paid, feeBps), 10000))
                        )
                    }
                    offerId := and(shr(8, word0), 0xffffffff)
                    // Slot 0 (layout in the constants above): status unchanged, or Active (2) ->
                    // Ended (3) when the budget ran out; offerId kept; the report's values.
                    word0 := or(shl(160, newPaid), or(add(status, exhausted), shl(8, offerId)))
                    word0 := or(word0, shl(40, calldataload(add(report, 0x20))))
                    word0 := or(word0, shl(72, timestamp()))
                    word0 := or(word0, shl(104, calldataload(add(report, 0x60))))
                    word0 := or(word0, shl(144, calldataload(add(report, 0xe0))))
                    sstore(slot, word0)
                }
            }

            // Event data, built past the free memory pointer (scratch: nothing is allocated before
            // it is logged): 2 words (UsageBatchSettled's array offset and length), then the
            // entries of the settled reports, 3 words each: rentalId, sequence, payment. Until the
            // log, its first word points where the next entry goes.
            mstore(mload(0x40), add(mload(0x40), 0x40))
            let deferredCount := 0
            let pendingOffer := 0
            let pendingCredit := 0
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let ok, exhausted, offerId, providerCredit := applyOne(add(offset, mul(i, 352)), expectedStatus, _rentals.slot)
                switch ok
                case 0 {
                    deferredCount := add(deferredCount, 1)
                    mstore(add(deferred, shl(5, deferredCount)), i)
                }
                default {
                    settled := add(settled, 1)
                    mstore(mload(0x40), add(mload(mload(0x40)), 0x60))
                    if exhausted {
                        deferredCount := add(deferredCount, 1)
                        mstore(add(deferred, shl(5, deferredCount)), or(i, _EXHAUSTED_FLAG))
                    }
                    if iszero(eq(offerId, pendingOffer)) {
                        creditProvider(pendingOffer, pendingCredit, _offers.slot, _balances.slot)
                        pendingOffer := offerId
                        pendingCredit := 0
                    }
                    // Sum of credits <= sum of budgets < count * 2**96.
                    pendingCredit := add(pendingCredit, providerCredit)
                }
            }
            creditProvider(pendingOffer, pendingCredit, _offers.slot, _balances.slot)
            if settled {
                let entries := mload(0x40)
                switch batch
                case 0 {
                    // One report (count is 1): emit UsageSettled(rentalId, sequence, payment).
                    log2(add(entries, 0x60), 0x40, _USAGE_SETTLED_TOPIC, mload(add(entries, 0x40)))
                }
                default {
                    // emit UsageBatchSettled(entries): all settled reports, in report order.
                    mstore(entries, 0x20)
                    mstore(add(entries, 0x20), mul(settled, 3))
                    log1(entries, add(0x40, mul(settled, 0x60)), _USAGE_BATCH_SETTLED_TOPIC)
                }
            }
            mstore(deferred, deferredCount) // shrink to the entries written
        }
    }

    /// @dev Calldata offset of a report or report array (for _applyRun).
    function _offsetOf(UsageReport calldata report) private pure returns (uint256 offset) {
        assembly ("memory-safe") {
            offset := report
        }
    }

    /// @dev Calldata offset of the first report of `reports` (for _applyRun).
    function _offsetOf(UsageReport[] calldata reports) private pure returns (uint256 offset) {
        assembly ("memory-safe") {
            offset := reports.offset
        }
    }
}
