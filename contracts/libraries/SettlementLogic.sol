// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Offer, Rental, RentalStatus, UsageReport} from "../types/DataTypes.sol";
import {IUsageSettlement} from "../../interfaces/IUsageSettlement.sol";
import {IRentalEscrow} from "../../interfaces/IRentalEscrow.sol";
import {RENTAL_SEQUENCE_MASK, RENTAL_AVAILABLE_MASK} from "./RentalSlot.sol";

/// @title SettlementLogic
/// @notice The cold parts of GpuRentMarket's settlement, deployed once as an external library
/// and reached by DELEGATECALL (GpuRentMarket's storage and events): the precise checks of a
/// report the fast path did not settle (errors, an Ended rental's final report), and crediting
/// providers' accrued earnings (claim, finalization).
/// @dev Why a library: see OfferLogic (EIP-170 code size). The hot path
/// (UsageSettlement._applyRun) stays in the market; this code runs only for reports the fast path
/// left and for claims. Its bounds are the same formulas as _applyRun's (IUsageSettlement).
library SettlementLogic {
    /// @dev Energy bound per watt of power limit and second: 1,000 mJ plus the nodes' 10 % margin.
    uint256 internal constant MAX_MILLIJOULES_PER_WATT_SECOND = 1100;

    /// @notice Whether `report` may settle `rental`: the rental is Active, or Ended within
    /// `settlementGrace` with periodEnd <= endedAt; the sequence is above the last settled one;
    /// periodEnd is not after the block time. When `strict`, reverts instead of returning false.
    /// Always reverts on values that do not fit the rental's storage (sequence > uint32,
    /// available > uint40, uptime > 10000), available seconds going down, or usage beyond the
    /// report bounds.
    function checkReport(Rental storage rental, UsageReport calldata report, bool strict, uint256 settlementGrace)
        external
        view
        returns (bool)
    {
        RentalStatus status = rental.status;
        if (status != RentalStatus.Active) {
            bool settleable = status == RentalStatus.Ended;
            if (settleable) {
                uint256 endedAt = rental.endedAt;
                if (block.timestamp > endedAt + settlementGrace) {
                    settleable = false;
                } else if (report.periodEnd > endedAt) {
                    if (strict) {
                        revert IUsageSettlement.UsageSettlement_PeriodAfterEnd(
                            report.rentalId, report.periodEnd, uint32(endedAt)
                        );
                    }
                    return false;
                }
            }
            if (!settleable) {
                if (strict) revert IUsageSettlement.UsageSettlement_NotSettleable(report.rentalId, uint8(status));
                return false;
            }
        }
        uint256 sequence = report.sequence;
        uint256 lastSequence = rental.sequence;
        if (sequence <= lastSequence) {
            if (strict) {
                revert IUsageSettlement.UsageSettlement_StaleSequence(
                    report.rentalId, uint64(sequence), uint32(lastSequence)
                );
            }
            return false;
        }
        uint256 periodEnd = report.periodEnd;
        if (periodEnd > block.timestamp) {
            // Not valid yet (a node clock ahead of the chain's): a batch skips it.
            if (strict) {
                revert IUsageSettlement.UsageSettlement_PeriodEndInFuture(report.rentalId, uint64(periodEnd), block.timestamp);
            }
            return false;
        }
        uint256 available = report.availableGpuSeconds;
        if (sequence > RENTAL_SEQUENCE_MASK || available > RENTAL_AVAILABLE_MASK || report.uptimeBps > 10_000) {
            revert IUsageSettlement.UsageSettlement_ValueOutOfRange(report.rentalId);
        }
        uint256 lastAvailable = rental.availableGpuSeconds;
        if (available < lastAvailable) {
            revert IUsageSettlement.UsageSettlement_AvailableDecreased(
                report.rentalId, uint64(available), uint40(lastAvailable)
            );
        }
        // Bounds: elapsed = max(0, periodEnd - startedAt), plus one second per GPU for periodEnd
        // being floored to whole seconds.
        uint256 startedAt = rental.startedAt;
        uint256 secondsBound = periodEnd > startedAt ? periodEnd - startedAt + 1 : 1;
        uint256 maxAvailable = uint256(rental.gpuCount) * secondsBound;
        if (available > maxAvailable) {
            revert IUsageSettlement.UsageSettlement_AvailableAboveBound(report.rentalId, available, maxAvailable);
        }
        uint256 maxEnergy = maxAvailable * rental.powerLimitW * MAX_MILLIJOULES_PER_WATT_SECOND;
        if (report.energyMillijoules > maxEnergy) {
            revert IUsageSettlement.UsageSettlement_EnergyAboveBound(
                report.rentalId, report.energyMillijoules, maxEnergy
            );
        }
        return true;
    }

    /// @notice Credits each rental's provider with its earnings not yet credited (see
    /// IUsageSettlement.claim); returns the sum.
    function claim(
        mapping(uint256 rentalId => Rental rental) storage rentals,
        mapping(uint256 offerId => Offer offer) storage offers,
        mapping(address account => mapping(address token => uint256 amount)) storage balances,
        uint256[] calldata rentalIds
    ) external returns (uint256 total) {
        for (uint256 i; i < rentalIds.length; ++i) {
            uint256 rentalId = rentalIds[i];
            Rental storage rental = rentals[rentalId];
            // Check:
            if (rental.status == RentalStatus.None) revert IRentalEscrow.RentalEscrow_UnknownRental(rentalId);
            // Effect:
            total += _claimEarnings(rental, rentalId, offers[rental.offerId].paymentToken, balances);
        }
    }

    /// @notice Credits `rental`'s provider with its earnings not yet credited, in `token` (the
    /// rental's payment token); returns the amount (finalization calls this for the rest).
    function claimEarnings(
        Rental storage rental,
        uint256 rentalId,
        address token,
        mapping(address account => mapping(address token => uint256 amount)) storage balances
    ) external returns (uint256) {
        return _claimEarnings(rental, rentalId, token, balances);
    }

    /// @notice What claim would credit for `rental` now: paid - fee(paid) - claimed.
    function claimable(Rental storage rental) public view returns (uint256) {
        uint256 paid = rental.paid;
        // earned never decreases (paid only grows) and claimed is always a past earned.
        return paid - paid * rental.feeBps / 10_000 - rental.claimed;
    }

    /// @notice Attested uptime of an ended rental: availableGpuSeconds / (gpuCount x duration),
    /// in basis points, at most 10000 (0 for a rental that lasted no time).
    function uptimeBps(Rental storage rental) external view returns (uint256) {
        uint256 gpuSecondsRented = uint256(rental.gpuCount) * (uint256(rental.endedAt) - rental.startedAt);
        if (gpuSecondsRented == 0) return 0;
        uint256 uptime = uint256(rental.availableGpuSeconds) * 10_000 / gpuSecondsRented;
        return uptime > 10_000 ? 10_000 : uptime;
    }

    function _claimEarnings(
        Rental storage rental,
        uint256 rentalId,
        address token,
        mapping(address account => mapping(address token => uint256 amount)) storage balances
    ) private returns (uint256 amount) {
        amount = claimable(rental);
        if (amount != 0) {
            address provider = rental.provider;
            // Effect: claimed becomes paid - fee(paid) <= paid <= budget < 2**96.
            rental.claimed += uint96(amount);
            balances[provider][token] += amount;
            emit IUsageSettlement.EarningsClaimed(rentalId, provider, amount);
        }
    }
}
