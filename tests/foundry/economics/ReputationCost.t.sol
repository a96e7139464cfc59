// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Reputation, FaultReport, RentalStatus} from "../../../contracts/types/DataTypes.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";

/// @notice Issue 7, behaviour 4: reputation costs what it claims. The score is denominated in
/// protocol fees (docs/economics.md): score = 10000 * deliveredFees / (feesPaid +
/// abandonedCollateral + slashedAmount + prior). A self-renter's net cost of a rental is its fee
/// (everything else comes back to it as provider and renter), so moving a fresh provider's score
/// from 0 to Y costs at least ceil(prior * Y / (10000 - Y)) in fees: the table of
/// docs/economics.md, checked here row by row and by a fuzz test over self-rental sequences.
/// Failed proof-of-GPU challenges cut a rental's delivered fees (the challenge table).
contract ReputationCostTest is MarketFixture {
    uint256 internal constant FEE_DIVISOR = 10_000 / FEE_BPS; // fee = paid / 40 at 250 bps
    uint256 internal constant TOKEN = 1e6;

    /// @dev Self-rentals by `who`: its offer (created on first use) and what it paid in and got back.
    mapping(address who => uint256 offerId) internal selfOffer;
    mapping(address who => uint256 amount) internal depositedBy;
    /// @dev The challenge counts the next self-rental's report carries.
    uint32 internal nextChallengesPassed;
    uint32 internal nextChallengesFailed;

    function setUp() public {
        _deployMarket();
    }

    /// @dev The documented cost, in fee units, of moving a fresh provider (no history) from
    /// score 0 to score `y` by self-rentals: ceil(prior * y / (10000 - y)).
    function _costFromZero(uint256 y) internal pure returns (uint256) {
        return (uint256(REPUTATION_PRIOR) * y + (10_000 - y) - 1) / (10_000 - y);
    }

    /// @dev The address `who` rents its own offers from (a second key of the same owner).
    function _sock(address who) internal pure returns (address) {
        return address(uint160(who) + 1);
    }

    /// @dev One self-rental of `who`'s offer by its sock: `gpuCount` GPUs for `durationS` seconds
    /// with `available` attested GPU-seconds, priced so that it pays `paid` in full; ended by the
    /// sock (as renter) or, when `providerEnds`, by `who`; finalized after the grace.
    function _selfRental(address who, uint16 gpuCount, uint256 durationS, uint256 available, uint256 paid, bool providerEnds)
        internal
        returns (uint256 rentalId)
    {
        if (selfOffer[who] == 0) selfOffer[who] = _list(who, 8, PRICE_PER_GPU_HOUR, 0);
        uint256 offerId = selfOffer[who];
        // price per GPU-hour such that available * price / 3600 == paid (available > 0)
        uint256 price = available == 0 ? PRICE_PER_GPU_HOUR : (paid * 3600 + available - 1) / available;
        vm.prank(who);
        market.updateOffer(offerId, _terms(8, uint72(price), 0));
        uint256 budget = paid == 0 ? 1 : paid;
        depositedBy[who] += budget;
        rentalId = _open(_sock(who), offerId, gpuCount, budget);
        vm.prank(who);
        market.startRental(rentalId);
        vm.warp(block.timestamp + durationS);
        if (available != 0) _settle(rentalId, 1, uint64(available), 0, nextChallengesPassed, nextChallengesFailed);
        if (_rental(rentalId).status == RentalStatus.Active) {
            vm.prank(providerEnds ? who : _sock(who));
            market.endRental(rentalId);
        }
        _finalizeAfterGrace(rentalId);
    }

    /// @dev A self-rental of one GPU for an hour at 100 % uptime whose fee is exactly `fee`.
    function _selfRentalPayingFee(address who, uint256 fee) internal {
        _selfRental(who, 1, 1 hours, 3600, fee * FEE_DIVISOR, false);
    }

    /// @dev What `who` and its sock lost in the payment token over the self-rentals (deposits
    /// minus what they can withdraw: refunds and provider earnings).
    function _netCost(address who) internal view returns (uint256) {
        return depositedBy[who] - market.withdrawable(who, address(usd)) - market.withdrawable(_sock(who), address(usd));
    }

    // ------------------------------------------------------------------ the documented table

    /// @dev Each row of docs/economics.md's table: from score X, paying one fee unit less than
    /// the documented cost leaves the score below Y; the documented cost reaches Y.
    function test_reputationCostTable_eachRowCostsExactlyWhatItSays() public {
        uint256[2][7] memory rows =
            [[uint256(0), 5000], [uint256(0), 9000], [uint256(0), 9500], [uint256(0), 9800], [uint256(5000), 9800], [uint256(9000), 9500], [uint256(9800), 9900]];
        uint256[7] memory documentedFeesInTokens = [uint256(100), 900, 1900, 4900, 4800, 1000, 5000];
        for (uint256 i = 0; i < rows.length; i++) {
            address who = address(uint160(0xB0B100 + i));
            uint256 x = rows[i][0];
            uint256 y = rows[i][1];
            if (x != 0) _selfRentalPayingFee(who, _costFromZero(x));
            assertEq(market.reputationScore(who), x, "starts at X");
            uint256 cost = _costFromZero(y) - _costFromZero(x);
            assertEq(cost, documentedFeesInTokens[i] * TOKEN, "the table's number");
            uint256 before = _netCost(who);
            _selfRentalPayingFee(who, cost - 1);
            assertLt(market.reputationScore(who), y, "one unit short of the cost stays below Y");
            _selfRentalPayingFee(who, 1);
            assertGe(market.reputationScore(who), y, "the documented cost reaches Y");
            assertEq(_netCost(who) - before, cost, "and the self-renter paid exactly the fees");
        }
    }

    /// @dev Issue 7.4: fifty zero-length or one-unit self-rentals, started, ended and finalized,
    /// used to raise a score from 50 to 98 at zero fee; now they move nothing.
    function test_reputation_freeSelfRentalsEarnNothing() public {
        for (uint256 i = 0; i < 50; i++) {
            _selfRental(provider, 1, 0, 0, 0, false);
        }
        Reputation memory rep = market.reputationOf(provider);
        assertEq(rep.completedRentals, 0, "no usage: not completed");
        assertEq(market.reputationScore(provider), 0, "score unchanged");
        for (uint256 i = 0; i < 50; i++) {
            _selfRental(provider, 1, 60, 60, 1, false); // one unit paid, fee 0
        }
        assertEq(market.reputationScore(provider), 0, "fee-free rentals add no weight");
    }

    /// @dev A provider that delivered nothing and ends its own rental just before the silence
    /// timeout is recorded as having abandoned it, and the collateral weighs against its score.
    function test_reputation_providerEndingWithoutUsageCountsAsAbandoned() public {
        _selfRentalPayingFee(provider, 100 * TOKEN); // score 5000
        assertEq(market.reputationScore(provider), 5000, "before");
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + SILENCE_TIMEOUT - 1);
        vm.prank(provider);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        Reputation memory rep = market.reputationOf(provider);
        assertEq(rep.abandonedRentals, 1, "abandoned");
        assertEq(uint256(rep.abandonedCollateral), MIN_STAKE_PER_GPU, "weighted by the rental's collateral");
        assertEq(market.reputationScore(provider), uint256(10_000) * 100e6 / 300e6, "score falls");
    }

    /// @dev Issue 7.4: twenty one-minute self-rentals at 100 % used to wash out a 30-day rental
    /// at 50 % uptime (a plain average over rentals). Uptime is now weighted by fees paid.
    function test_reputation_shortSelfRentalsCannotWashOutALongLowUptimeRental() public {
        uint256 rentalId = _activeRental(1, 2_500_000, 0, 2_000e6);
        vm.warp(block.timestamp + 30 days);
        _settle(rentalId, 1, 15 days, 0); // 50 % uptime: paid 900 tokens, fee 22.5
        vm.prank(renter);
        market.endRental(rentalId);
        _finalizeAfterGrace(rentalId);
        uint256 before = market.reputationScore(provider);
        assertEq(before, 10_000 * (22_500_000 / 2) / (22_500_000 + uint256(REPUTATION_PRIOR)), "50 % of fee weight");
        for (uint256 i = 0; i < 20; i++) {
            _selfRental(provider, 1, 60, 60, uint256(60) * 2_500_000 / 3600, false);
        }
        assertLe(market.reputationScore(provider), before + 10, "twenty one-minute rentals barely move it");
    }

    /// @dev Issue 7.4: three slashes used to wash out with forty free rentals. Slashes weigh by
    /// their amount; only fees buy the score back, at the documented price.
    function test_reputation_slashesWeighByAmount() public {
        _selfRentalPayingFee(provider, 900 * TOKEN); // score 9000
        uint256 rentalId = _activeRental(4, PRICE_PER_GPU_HOUR, 0, 100e6);
        for (uint8 kind = 1; kind <= 3; kind++) {
            FaultReport memory fault = _fault(rentalId, kind, kind);
            market.slash(fault, _signFault(fault));
        }
        uint256 slashedAmount = 3 * 4 * MIN_STAKE_PER_GPU * SLASH_BPS / 10_000; // 120 tokens
        assertEq(market.reputationOf(provider).slashedAmount, slashedAmount, "amount recorded");
        uint256 score = market.reputationScore(provider);
        assertEq(score, 10_000 * 900e6 / (900e6 + slashedAmount + REPUTATION_PRIOR), "slashes weigh by amount");
        _stake(provider, slashedAmount); // back above its listed GPUs' minimum, to keep renting
        for (uint256 i = 0; i < 40; i++) {
            _selfRental(provider, 1, 0, 0, 0, false);
        }
        assertEq(market.reputationScore(provider), score, "free rentals do not wash slashes out");
    }

    /// @dev docs/economics.md "Failed challenges": from fees of 900 tokens at 100 % uptime (score
    /// 9000 with every challenge passed), each row's challenge record gives the documented score:
    /// a completed rental delivers its fee x uptime x the share of its challenges passed.
    function test_reputationChallengeTable_failedChallengesLowerTheScoreAsDocumented() public {
        uint32[2][5] memory records = [[uint32(0), 0], [uint32(10), 0], [uint32(9), 1], [uint32(1), 1], [uint32(0), 3]];
        uint256[5] memory documentedScores = [uint256(9000), 9000, 8100, 4500, 0];
        for (uint256 i = 0; i < records.length; i++) {
            address who = address(uint160(0xC4A100 + i));
            nextChallengesPassed = records[i][0];
            nextChallengesFailed = records[i][1];
            _selfRentalPayingFee(who, 900 * TOKEN);
            Reputation memory rep = market.reputationOf(who);
            assertEq(rep.challengesPassed, records[i][0], "passed recorded");
            assertEq(rep.challengesFailed, records[i][1], "failed recorded");
            assertEq(uint256(rep.feesPaid), 900 * TOKEN, "the whole fee is paid");
            assertEq(market.reputationScore(who), documentedScores[i], "the table's score");
        }
    }

    /// @dev Failed challenges cannot be bought back cheaper than the fee table says: the failed
    /// rental's fee stays in the denominator with its delivered part cut.
    function test_reputation_failedChallengesAreNotWashedOutByFreeRentals() public {
        nextChallengesPassed = 1;
        nextChallengesFailed = 1;
        _selfRentalPayingFee(provider, 900 * TOKEN);
        uint256 score = market.reputationScore(provider);
        assertEq(score, 4500, "half the challenges failed: half the fee delivered");
        nextChallengesPassed = 0;
        nextChallengesFailed = 0;
        for (uint256 i = 0; i < 20; i++) {
            _selfRental(provider, 1, 0, 0, 0, false);
        }
        assertEq(market.reputationScore(provider), score, "free rentals move nothing");
    }

    // ------------------------------------------------------------------ fuzz

    struct SelfRentalInput {
        uint16 gpuCount;
        uint32 durationS;
        uint16 uptimeBps;
        uint64 paid;
        bool providerEnds;
    }

    /// @dev No sequence of self-rentals (any sizes, durations, uptimes, prices) that costs less
    /// than the documented cost reaches the documented score: whenever the score reaches Y, the
    /// self-renter has paid at least ceil(prior * Y / (10000 - Y)) in fees; and the score never
    /// exceeds 10000 * cost / (cost + prior).
    function testFuzz_reputation_noSelfRentalSequenceCheaperThanTheTableReachesItsScore(
        SelfRentalInput[4] memory inputs,
        uint16 targetScore
    ) public {
        for (uint256 i = 0; i < inputs.length; i++) {
            SelfRentalInput memory input = inputs[i];
            uint16 gpus = uint16(bound(input.gpuCount, 1, 4));
            uint256 duration = bound(input.durationS, 0, 3 days);
            uint256 available = uint256(gpus) * duration * bound(input.uptimeBps, 0, 10_000) / 10_000;
            uint256 paid = available == 0 ? 0 : bound(input.paid, 1, 20_000e6);
            _selfRental(provider, gpus, duration, available, paid, input.providerEnds);
        }
        uint256 cost = _netCost(provider);
        uint256 score = market.reputationScore(provider);
        assertEq(cost, market.reputationOf(provider).feesPaid, "a self-renter's net cost is its fees");
        assertLe(score, 10_000 * cost / (cost + REPUTATION_PRIOR), "score <= what its fees buy");
        uint256 y = bound(targetScore, 1, 9900);
        if (score >= y) assertGe(cost, _costFromZero(y), "reaching Y cost at least the documented fees");
    }
}
