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
/// NOTE: a quorum that signs a report with lower cumulative energy than before only lowers the
/// payment (to zero); a lower availableGpuSeconds is rejected.
abstract contract UsageSettlement is IUsageSettlement, RentalEscrow {
    bytes32 internal constant USAGE_REPORT_TYPEHASH = keccak256(
        "UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,bytes32 telemetryHash,uint32 signerSetVersion)"
    );
    bytes32 internal constant USAGE_REPORT_BATCH_TYPEHASH = keccak256(
        "UsageReportBatch(UsageReport[] reports)UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,uint32 faultFlags,bytes32 telemetryHash,uint32 signerSetVersion)"
    );

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
        // Effect:
        _settle(report, true);
    }

    /// @inheritdoc IUsageSettlement
    function settleBatch(UsageReport[] calldata reports, bytes calldata signatures) external nonReentrant {
        uint256 count = reports.length;
        // Check:
        if (count == 0) revert UsageSettlement_NothingSettled();
        uint32 version = _signerSetVersion;
        for (uint256 i; i < count; ++i) {
            uint32 signedVersion = reports[i].signerSetVersion;
            if (signedVersion != version) revert OracleQuorum_WrongSignerSetVersion(signedVersion, version);
        }
        _verifyQuorum(_hashTypedDataV4(_usageBatchStructHash(reports)), signatures, version);
        // Effect:
        uint256 settled;
        for (uint256 i; i < count; ++i) {
            if (_settle(reports[i], false)) {
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
        return _hashTypedDataV4(_usageBatchStructHash(reports));
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
        uint256 rentalId = report.rentalId;
        Rental storage rental = _rentals[rentalId];
        uint256 word0;
        assembly ("memory-safe") {
            word0 := sload(rental.slot)
        }
        // Check: the rental can settle and the report is strictly newer than the last one.
        if (!_canSettle(rental, word0, report, strict)) {
            emit UsageReportSkipped(rentalId, report.sequence);
            return false;
        }
        (uint256 payment, uint256 newPaid, uint256 providerCredit, uint256 budget) = _payment(rental, word0, report);

        // Effect: rental slot 0 as one word.
        uint256 status = word0 & 0xff;
        bool exhausted = newPaid == budget && status == uint256(RentalStatus.Active);
        if (exhausted) status = uint256(RentalStatus.Ended);
        word0 = _packSlot0(word0, status, report, newPaid);
        assembly ("memory-safe") {
            sstore(rental.slot, word0)
        }
        if (providerCredit != 0) {
            Offer storage offer = _offers[(word0 & _S0_OFFER_ID_MASK) >> 8];
            _balances[offer.provider][offer.paymentToken] += providerCredit;
        }
        emit UsageSettled(rentalId, report.sequence, payment);
        if (exhausted) _end(rentalId, rental, EndReason.BudgetExhausted);
        return true;
    }

    /// @dev Rental slot 0 after settling `report` (values range-checked by _canSettle; newPaid
    /// <= budget < 2**96; block.timestamp < 2**32 until 2106).
    function _packSlot0(uint256 word0, uint256 status, UsageReport calldata report, uint256 newPaid)
        private
        view
        returns (uint256)
    {
        return status | (word0 & _S0_OFFER_ID_MASK) | (uint256(report.sequence) << _S0_SEQUENCE)
            | (block.timestamp << _S0_LAST_SETTLED_AT) | (uint256(report.availableGpuSeconds) << _S0_AVAILABLE)
            | (uint256(report.uptimeBps) << _S0_UPTIME) | (newPaid << _S0_PAID);
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
                if (block.timestamp > endedAt + _params.settlementGrace) {
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

    /// @dev Payment for `report`: cost(new cumulative) - paid, capped by budget - paid.
    /// @return payment Amount moved out of the budget now.
    /// @return newPaid Cumulative amount paid after this report.
    /// @return providerCredit Increase of the provider's share paid - floor(paid * feeBps / 10000)
    /// (non-negative: that share never decreases as paid grows).
    /// @return budget The rental's budget.
    function _payment(Rental storage rental, uint256 word0, UsageReport calldata report)
        private
        view
        returns (uint256 payment, uint256 newPaid, uint256 providerCredit, uint256 budget)
    {
        uint256 word1;
        assembly ("memory-safe") {
            word1 := sload(add(rental.slot, 1))
        }
        uint256 cost = _cost(
            report.availableGpuSeconds, report.energyMillijoules, word1 & _MASK72, (word1 >> _S1_PRICE_PER_KWH) & _MASK72
        );
        uint256 paid = word0 >> _S0_PAID;
        budget = word1 >> _S1_BUDGET;
        unchecked {
            // paid <= budget always holds (paid only grows by at most budget - paid), and
            // cost > paid is checked before subtracting.
            payment = cost > paid ? cost - paid : 0;
            if (payment > budget - paid) payment = budget - paid;
        }
        newPaid = paid + payment;
        uint256 feeBps = (word1 >> _S1_FEE_BPS) & _MASK16;
        providerCredit = (newPaid - newPaid * feeBps / 10_000) - (paid - paid * feeBps / 10_000);
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
    /// ... || hashStruct(r_n-1))), EIP-712's encoding of an array of structs.
    function _usageBatchStructHash(UsageReport[] calldata reports) private pure returns (bytes32) {
        uint256 count = reports.length;
        bytes32[] memory hashes = new bytes32[](count);
        for (uint256 i; i < count; ++i) {
            hashes[i] = _usageReportStructHash(reports[i]);
        }
        bytes32 arrayHash;
        assembly ("memory-safe") {
            arrayHash := keccak256(add(hashes, 0x20), mul(count, 0x20))
        }
        return keccak256(abi.encode(USAGE_REPORT_BATCH_TYPEHASH, arrayHash));
    }
}
