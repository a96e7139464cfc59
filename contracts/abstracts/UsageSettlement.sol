// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Offer, Rental, RentalStatus, EndReason, UsageReport} from "../types/DataTypes.sol";
import {IUsageSettlement} from "../../interfaces/IUsageSettlement.sol";
import {RentalEscrow} from "./RentalEscrow.sol";
import {SettlementLogic} from "../libraries/SettlementLogic.sol";
import {
    RENTAL_STATUS_MASK,
    RENTAL_SEQUENCE_OFFSET,
    RENTAL_SEQUENCE_MASK,
    RENTAL_LAST_SETTLED_AT_OFFSET,
    RENTAL_AVAILABLE_OFFSET,
    RENTAL_AVAILABLE_MASK,
    RENTAL_POWER_LIMIT_OFFSET,
    RENTAL_POWER_LIMIT_MASK,
    RENTAL_PAID_OFFSET,
    RENTAL_PAID_MASK,
    RENTAL_STARTED_AT_OFFSET,
    RENTAL_SLOT0_SETTLEMENT_KEEP_MASK,
    RENTAL_PRICE_PER_KWH_OFFSET,
    RENTAL_PRICE_MASK,
    RENTAL_BUDGET_OFFSET,
    RENTAL_BUDGET_MASK,
    RENTAL_GPU_COUNT_OFFSET,
    RENTAL_CHALLENGES_SLOT,
    RENTAL_CHALLENGES_FAILED_OFFSET,
    RENTAL_CHALLENGE_COUNT_MASK
} from "../libraries/RentalSlot.sol";

/// @title UsageSettlement
/// @notice Accrues providers' earnings in escrow for quorum-signed cumulative usage reports;
/// `claim` credits them to the providers' withdrawable balances.
/// @dev Gas design (measured by tools/gas_report.py, committed in reports/gas.json):
/// - A settlement touches two rental slots and nothing else in storage: slot 0 is read and
///   written as ONE word (status, sequence, lastSettledAt, availableGpuSeconds, powerLimitW,
///   paid, startedAt), slot 1 is read once (prices snapshotted at open, budget, gpuCount).
///   Writing slot 0 field by field would cost one extra warm SLOAD+SSTORE pair per field, so the
///   word is composed in assembly with the named offsets of contracts/libraries/RentalSlot.sol,
///   which are Solidity's layout of `Rental` (first member in the lowest bits; fuzzed there).
/// - The challenge record (Rental slot 5: the cumulative challengesPassed / challengesFailed,
///   which the reputation adds up at finalization; slots 0 and 1 are full) is kept only by the
///   reports that decide it: one that carries a failed challenge, and the rental's final ones
///   (settled after it ended, or exhausting its budget). They pay one cold SLOAD (2,100 gas) and
///   a write when the counts changed (5,000; 22,100 the first time for a rental). An Active
///   rental's report with passed challenges only, nearly every report, pays nothing for it; the
///   passed count of a rental that no report settles after its end is not recorded.
/// - Settlement reads neither the offer nor the provider's balance: earnings accrue in `paid`
///   and `claim` (or finalization) credits paid - fee(paid) - claimed. A balance slot written
///   per settlement cost 2,900-22,100 gas (22,100 when the provider's balance was zero: a new
///   provider, or after every withdraw) and made a batch of many providers' rentals cost twice
///   a batch of one provider's.
/// - The protocol fee is not written per settlement: it is a function of the cumulative `paid`
///   and is credited to the treasury once, at finalization.
/// - The struct hash copies the 13 calldata words of the report next to the type hash and hashes
///   them, instead of re-encoding field by field. A report with dirty high-order bits hashes to
///   a digest no honest signer signed, so it fails the quorum check.
/// - Energy is not stored: cost(new) - cost(old) is computed as cost(new) - paid, since paid ==
///   cost(last settled report) until the budget is exhausted (which ends the rental).
/// - Signatures: signers strictly ascending instead of a seen-bitmap; one SLOAD per signer.
/// - Events: settleBatch logs ONE UsageBatchSettled with one packed data word per report
///   (rentalId, sequence, payment; 256 gas of log data) instead of a UsageSettled per report
///   (log2 with 2 data words, ~1,600 gas) or three words per report (768 gas).
/// - Bounds (docs/protocol.md "Report bounds"): periodEnd <= block.timestamp; available <=
///   gpuCount x (elapsed + 1); energy <= gpuCount x powerLimitW x 1.1 x (elapsed + 1) (in J),
///   where elapsed = periodEnd - startedAt (0 if negative). The second of slack per GPU absorbs
///   periodEnd being the last sample's time floored to whole seconds; 1.1 is the nodes' power
///   limit margin (MeteringPolicy.power_limit_margin_permille = 100). All operands come from the
///   two slots a settlement reads anyway.
/// NOTE: a quorum that signs a report with lower cumulative energy than before only lowers the
/// payment (to zero); a lower availableGpuSeconds is rejected.
abstract contract UsageSettlement is IUsageSettlement, RentalEscrow {
    bytes32 internal constant USAGE_REPORT_TYPEHASH = keccak256(
        "UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,uint32 challengesPassed,uint32 challengesFailed,bytes32 telemetryHash,uint32 signerSetVersion)"
    );
    bytes32 internal constant USAGE_REPORT_BATCH_TYPEHASH = keccak256(
        "UsageReportBatch(UsageReport[] reports)UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,uint32 challengesPassed,uint32 challengesFailed,bytes32 telemetryHash,uint32 signerSetVersion)"
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

    /// @dev Most reports one settleBatch accepts. Measured (tools/gas_report.py, reports/gas.json):
    /// a report of an Active rental costs at most ~20,000 gas on its rental's first settlement
    /// and ~10,000 after; the slowest path (an Ended rental's final report, its own UsageSettled)
    /// ~25,000 plus its 416 calldata bytes (~6,700 gas). 256 reports stay below 10 M gas, a third
    /// of a 30 M-gas block, whatever mix they are.
    uint256 internal constant _MAX_BATCH_REPORTS = 256;

    /// @dev ABI size of a UsageReport (13 static words).
    uint256 private constant _REPORT_SIZE = 416;
    uint256 private constant _SECONDS_PER_HOUR = 3600;
    uint256 private constant _MILLIJOULES_PER_KWH = 3_600_000_000;
    /// @dev Energy bound per watt of power limit and second: 1,000 mJ plus the nodes' 10 % power
    /// limit margin (equal to SettlementLogic.MAX_MILLIJOULES_PER_WATT_SECOND; a fuzz test
    /// checks the fast path and the precise checks agree).
    uint256 private constant _MAX_MILLIJOULES_PER_WATT_SECOND = 1100;

    // The rental's slot layout (bit offsets and masks of slots 0 and 1) is named once, in
    // contracts/libraries/RentalSlot.sol; _applyRun's assembly uses those constants. status and
    // pricePerGpuHour sit at bit offset 0 (a shift by 0 is not optimized away and costs 6 gas),
    // so they are read with their mask alone (RentalSlot.t.sol checks both offsets are 0).

    /// @inheritdoc IUsageSettlement
    function settle(UsageReport calldata report, bytes calldata signatures) external nonReentrant {
        // Check:
        _verifyQuorum(_hashTypedDataV4(_usageReportStructHash(report)), signatures, report.signerSetVersion);
        // Effect: the fast path settles an Active rental's well-formed, in-bounds newer report;
        // anything else goes through _settle for the precise error (or an Ended rental's final
        // report).
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
        if (count > _MAX_BATCH_REPORTS) revert UsageSettlement_BatchTooLarge(count, _MAX_BATCH_REPORTS);
        // Every report names the version of the set that signed the batch (the current one, or
        // the previous one during its overlap).
        uint32 version = reports[0].signerSetVersion;
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
    function claim(uint256[] calldata rentalIds) external returns (uint256) {
        return SettlementLogic.claim(_rentals, _offers, _balances, rentalIds);
    }

    /// @inheritdoc IUsageSettlement
    function claimable(uint256 rentalId) external view returns (uint256) {
        return SettlementLogic.claimable(_rentals[rentalId]);
    }

    /// @inheritdoc IUsageSettlement
    // slither-disable-next-line naming-convention
    function MAX_BATCH_REPORTS() external pure returns (uint256) {
        return _MAX_BATCH_REPORTS;
    }

    /// @inheritdoc IUsageSettlement
    function lastSettlement(uint256 rentalId) external view returns (uint32 sequence, uint32 settledAt) {
        Rental storage rental = _rentals[rentalId];
        return (rental.sequence, rental.lastSettledAt);
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
    /// UsageReportSkipped) when `strict` is false and the report is stale, ahead of the block
    /// time, or its rental cannot settle; reverts in those cases when `strict` is true.
    /// Malformed or out-of-bounds values always revert.
    function _settle(UsageReport calldata report, bool strict) private returns (bool) {
        Rental storage rental = _rentals[report.rentalId];
        // Check: the rental can settle, the report is strictly newer than the last one and in
        // bounds (SettlementLogic: precise errors).
        if (!SettlementLogic.checkReport(rental, report, strict, _rentalTerms[report.rentalId].settlementGrace)) {
            emit UsageReportSkipped(report.rentalId, report.sequence);
            return false;
        }
        // Effect: same arithmetic and write as the fast path, for the status found.
        (uint256 settled, uint256[] memory deferred) =
            _applyRun(_offsetOf(report), 1, uint256(rental.status), false);
        if (settled == 0) revert UsageSettlement_ValueOutOfRange(report.rentalId); // energy >= 2**128
        if (deferred.length != 0) _end(report.rentalId, rental, EndReason.BudgetExhausted);
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

    /// @dev hashStruct(UsageReport): keccak256(TYPEHASH || the report's 13 ABI words).
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
        // decoder has checked that reports.offset + count * 416 lies within calldata.
        assembly ("memory-safe") {
            let hashes := mload(0x40)
            let scratch := add(hashes, mul(count, 0x20))
            mstore(scratch, typeHash)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let src := add(reports.offset, mul(i, _REPORT_SIZE))
                calldatacopy(add(scratch, 0x20), src, _REPORT_SIZE)
                mstore(add(hashes, mul(i, 0x20)), keccak256(scratch, add(_REPORT_SIZE, 0x20)))
                // signerSetVersion is the report's last word.
                if and(iszero(iszero(version)), iszero(eq(calldataload(add(src, 384)), version))) {
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
    /// `offset`. Settles each report whose rental is in `expectedStatus` and which is newer,
    /// well-formed (sequence <= uint32, available <= uint40 and not below the last, energy <
    /// 2**128, uptime <= 10000, challenge counts <= uint32) and within the bounds (periodEnd <= now, available and energy
    /// within what the rental's GPUs can deliver since its start): computes the payment, writes
    /// rental slot 0 as one word, and emits one UsageBatchSettled of all the reports it settled
    /// when `batch`, else (count is 1) the report's UsageSettled. Returns how many settled and,
    /// in report order, `deferred`: the index of each report left untouched (for _settle to
    /// skip, revert with the precise error, or settle an Ended rental), and
    /// `index | _EXHAUSTED_FLAG` for each whose rental's budget ran out (the caller records the
    /// end). Touches no storage but the rentals' slots 0 (read, write) and 1 (read), and slot 5
    /// (the challenge record) for a report that carries challenges.
    /// Written on raw words because it runs once per report of a batch (checked Solidity over the
    /// Rental struct measured ~4,500 gas more per report).
    function _applyRun(uint256 offset, uint256 count, uint256 expectedStatus, bool batch)
        private
        returns (uint256 settled, uint256[] memory deferred)
    {
        deferred = new uint256[](count);
        assembly ("memory-safe") {
            function applyOne(report, status, rentals) -> ok, exhausted {
                let slot
                {
                    mstore(0x00, calldataload(report)) // rentalId
                    mstore(0x20, rentals)
                    slot := keccak256(0x00, 0x40)
                }
                let word0 := sload(slot)
                let available := calldataload(add(report, 0x60))
                {
                    let sequence := calldataload(add(report, 0x20))
                    ok := and(eq(and(word0, RENTAL_STATUS_MASK), status), gt(sequence, and(shr(RENTAL_SEQUENCE_OFFSET, word0), RENTAL_SEQUENCE_MASK)))
                    ok := and(ok, iszero(or(gt(sequence, RENTAL_SEQUENCE_MASK), gt(available, RENTAL_AVAILABLE_MASK))))
                    ok := and(ok, iszero(lt(available, and(shr(RENTAL_AVAILABLE_OFFSET, word0), RENTAL_AVAILABLE_MASK))))
                }
                // uptime <= 10000 and energy < 2**128
                ok := and(ok, iszero(or(gt(calldataload(add(report, 0xe0)), 10000), shr(128, calldataload(add(report, 0xa0))))))
                let word1
                let challenges
                if ok {
                    // Challenge counts <= uint32; their record word (RentalSlot.encodeChallenges).
                    {
                        let passed := calldataload(add(report, 0x120))
                        let failed := calldataload(add(report, 0x140))
                        ok := iszero(gt(or(passed, failed), RENTAL_CHALLENGE_COUNT_MASK))
                        challenges := or(passed, shl(RENTAL_CHALLENGES_FAILED_OFFSET, failed))
                    }
                    word1 := sload(add(slot, 1))
                    // Bounds: periodEnd <= now; available <= gpuCount * (elapsed + 1); energy <=
                    // that * powerLimitW * 1100 mJ. periodEnd <= now < 2**64 here (the `and`
                    // evaluates both sides; an out-of-range periodEnd fails the first test), so
                    // the products stay below 2**16 * 2**64 * 2**16 * 2**11.
                    let periodEnd := calldataload(add(report, 0x40))
                    let startedAt := shr(RENTAL_STARTED_AT_OFFSET, word0)
                    let secondsBound := add(mul(gt(periodEnd, startedAt), sub(periodEnd, startedAt)), 1)
                    let maxAvailable := mul(shr(RENTAL_GPU_COUNT_OFFSET, word1), secondsBound)
                    let maxEnergy := mul(
                        mul(maxAvailable, and(shr(RENTAL_POWER_LIMIT_OFFSET, word0), RENTAL_POWER_LIMIT_MASK)),
                        _MAX_MILLIJOULES_PER_WATT_SECOND
                    )
                    ok := and(ok, and(iszero(gt(periodEnd, timestamp())), iszero(gt(available, maxAvailable))))
                    ok := and(ok, iszero(gt(calldataload(add(report, 0xa0)), maxEnergy)))
                }
                if ok {
                    let paid := and(shr(RENTAL_PAID_OFFSET, word0), RENTAL_PAID_MASK)
                    let budget := and(shr(RENTAL_BUDGET_OFFSET, word1), RENTAL_BUDGET_MASK)
                    // cost(new cumulative) = floor(available * pricePerGpuHour / 3600) +
                    // floor(energy * pricePerKwh / 3.6e9). No product overflows: available
                    // < 2**40, energy < 2**128, prices < 2**72.
                    let payment := add(
                        div(mul(available, and(word1, RENTAL_PRICE_MASK)), _SECONDS_PER_HOUR),
                        div(
                            mul(calldataload(add(report, 0xa0)), and(shr(RENTAL_PRICE_PER_KWH_OFFSET, word1), RENTAL_PRICE_MASK)),
                            _MILLIJOULES_PER_KWH
                        )
                    )
                    switch gt(payment, paid)
                    case 0 { payment := 0 }
                    default { payment := sub(payment, paid) }
                    // paid <= budget always holds, so budget - paid does not underflow.
                    if gt(payment, sub(budget, paid)) { payment := sub(budget, paid) }
                    let newPaid := add(paid, payment)
                    // Only an Active rental ends on exhaustion (an Ended one already has).
                    exhausted := and(eq(newPaid, budget), eq(status, 2))
                    // This report's entry of the event data, where its first word points, packed
                    // in one word: rentalId << 128 | sequence << 96 | payment (rentalId <=
                    // rentalCount < 2**128 since the rental exists, sequence < 2**32, payment <=
                    // budget < 2**96).
                    mstore(
                        mload(mload(0x40)),
                        or(or(shl(128, calldataload(report)), shl(96, calldataload(add(report, 0x20)))), payment)
                    )
                    // Slot 0 (RentalSlot.settledWord0): status unchanged, or Active (2) -> Ended
                    // (3) when the budget ran out; powerLimitW and startedAt kept; the report's
                    // sequence and available seconds, the time, the new paid.
                    word0 := or(and(word0, RENTAL_SLOT0_SETTLEMENT_KEEP_MASK), add(status, exhausted))
                    word0 := or(word0, shl(RENTAL_SEQUENCE_OFFSET, calldataload(add(report, 0x20))))
                    word0 := or(word0, shl(RENTAL_LAST_SETTLED_AT_OFFSET, timestamp()))
                    word0 := or(word0, shl(RENTAL_AVAILABLE_OFFSET, available))
                    word0 := or(word0, shl(RENTAL_PAID_OFFSET, newPaid))
                    sstore(slot, word0)
                    // The challenge record (cumulative counts, added to the reputation at
                    // finalization) is kept by the reports that decide it: one carrying a failed
                    // challenge, and the rental's final ones (settled after it ended, or the one
                    // that exhausts its budget). An Active rental's report with passed challenges
                    // only, the common case, neither reads nor writes it; a record is written
                    // only when it changed.
                    if and(
                        iszero(iszero(challenges)),
                        or(iszero(iszero(shr(RENTAL_CHALLENGES_FAILED_OFFSET, challenges))), or(eq(status, 3), exhausted))
                    ) {
                        let challengeSlot := add(slot, RENTAL_CHALLENGES_SLOT)
                        if iszero(eq(sload(challengeSlot), challenges)) { sstore(challengeSlot, challenges) }
                    }
                }
            }

            // Event data, built past the free memory pointer (scratch: nothing is allocated before
            // it is logged): 2 words (UsageBatchSettled's array offset and length), then the
            // entries of the settled reports, one packed word each (see applyOne). Until the log,
            // its first word points where the next entry goes.
            mstore(mload(0x40), add(mload(0x40), 0x40))
            let deferredCount := 0
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let ok, exhausted := applyOne(add(offset, mul(i, _REPORT_SIZE)), expectedStatus, _rentals.slot)
                switch ok
                case 0 {
                    deferredCount := add(deferredCount, 1)
                    mstore(add(deferred, shl(5, deferredCount)), i)
                }
                default {
                    settled := add(settled, 1)
                    mstore(mload(0x40), add(mload(mload(0x40)), 0x20))
                    if exhausted {
                        deferredCount := add(deferredCount, 1)
                        mstore(add(deferred, shl(5, deferredCount)), or(i, _EXHAUSTED_FLAG))
                    }
                }
            }
            if settled {
                let entries := mload(0x40)
                switch batch
                case 0 {
                    // One report (count is 1): emit UsageSettled(rentalId, sequence, payment),
                    // unpacked from its entry into scratch space.
                    let entry := mload(add(entries, 0x40))
                    mstore(0x00, and(shr(96, entry), 0xffffffff))
                    mstore(0x20, and(entry, 0xffffffffffffffffffffffff))
                    log2(0x00, 0x40, _USAGE_SETTLED_TOPIC, shr(128, entry))
                }
                default {
                    // emit UsageBatchSettled(entries): all settled reports, in report order.
                    mstore(entries, 0x20)
                    mstore(add(entries, 0x20), settled)
                    log1(entries, add(0x40, shl(5, settled)), _USAGE_BATCH_SETTLED_TOPIC)
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
