// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {MarketParams, Rental, RentalStatus, EndReason, Stake, Reputation} from "../../../contracts/types/DataTypes.sol";
import {MarketFixture} from "../utils/MarketFixture.sol";
import {Console} from "../utils/Console.sol";
import {MarketHandler} from "./handlers/MarketHandler.sol";

/// @notice Conservation of money and the rental lifecycle under random sequences of every
/// user-facing call (see MarketHandler). Run settings: foundry.toml `[invariant]`.
contract MarketInvariantTest is MarketFixture {
    MarketHandler internal handler;

    function setUp() public {
        _deployMarket();
        // Shorter clocks than the fixture so that a 100-call run reaches every timeout.
        vm.startPrank(governance);
        market.setParams(_invariantParams());
        vm.stopPrank();
        handler = new MarketHandler(market, usd, stakeToken, governance, treasury, oracleKeys, THRESHOLD);
        vm.label(address(handler), "MarketHandler");
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](21);
        selectors[0] = MarketHandler.stake.selector;
        selectors[1] = MarketHandler.requestUnstake.selector;
        selectors[2] = MarketHandler.completeUnstake.selector;
        selectors[3] = MarketHandler.slash.selector;
        selectors[4] = MarketHandler.createOffer.selector;
        selectors[5] = MarketHandler.updateOffer.selector;
        selectors[6] = MarketHandler.withdrawOffer.selector;
        selectors[7] = MarketHandler.openRental.selector;
        selectors[8] = MarketHandler.startRental.selector;
        selectors[9] = MarketHandler.topUp.selector;
        selectors[10] = MarketHandler.cancelRental.selector;
        selectors[11] = MarketHandler.endRental.selector;
        selectors[12] = MarketHandler.closeSilentRental.selector;
        selectors[13] = MarketHandler.finalizeRental.selector;
        selectors[14] = MarketHandler.withdraw.selector;
        selectors[15] = MarketHandler.settle.selector;
        selectors[16] = MarketHandler.settleBatch.selector;
        selectors[17] = MarketHandler.warp.selector;
        selectors[18] = MarketHandler.rotateSignerSet.selector;
        selectors[19] = MarketHandler.setParams.selector;
        selectors[20] = MarketHandler.claim.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function _invariantParams() internal view returns (MarketParams memory p) {
        p = _defaultParams();
        p.startTimeout = 2 hours;
        p.silenceTimeout = 6 hours;
        p.settlementGrace = 2 hours;
        p.maxRentalDuration = 3 days;
        p.unbondingDelay = 4 days;
    }

    /*//////////////////////////////////////////////////////////////
                          CONSERVATION OF MONEY
    //////////////////////////////////////////////////////////////*/

    /// @dev Payment token: the market holds exactly the escrow of every rental that is not yet
    /// terminal (budget minus the provider's credited share; the pending fee stays in escrow until
    /// finalization) plus every withdrawable balance. (>= is what safety needs; == holds because
    /// nothing else can move the market's tokens.)
    function invariant_balanceCoversEscrowAndWithdrawable_paymentToken() public view {
        uint256 escrowed;
        uint256 total = market.rentalCount();
        for (uint256 id = 1; id <= total; id++) {
            Rental memory r = market.getRental(id);
            if (r.status == RentalStatus.Cancelled || r.status == RentalStatus.Finalized) continue;
            escrowed += uint256(r.budget) - r.claimed; // unclaimed earnings stay in escrow
        }
        uint256 liabilities = escrowed + _sumWithdrawable(address(usd));
        uint256 balance = usd.balanceOf(address(market));
        assertGe(balance, liabilities, "payment token: balance covers escrow + withdrawable");
        assertEq(balance, liabilities, "payment token: balance == escrow + withdrawable");
    }

    /// @dev Stake token: the market holds exactly every provider's active and unbonding stake,
    /// the slashes held for unfinalized rentals, and the slash shares credited at finalization.
    function invariant_balanceCoversStakesAndWithdrawable_stakeToken() public view {
        uint256 stakes;
        address[] memory ps = handler.providerList();
        for (uint256 i = 0; i < ps.length; i++) {
            Stake memory st = market.stakeOf(ps[i]);
            stakes += uint256(st.active) + st.unbonding;
        }
        uint256 total = market.rentalCount();
        for (uint256 id = 1; id <= total; id++) {
            Rental memory r = market.getRental(id);
            if (r.status != RentalStatus.Finalized) stakes += r.slashed;
        }
        uint256 liabilities = stakes + _sumWithdrawable(address(stakeToken));
        uint256 balance = stakeToken.balanceOf(address(market));
        assertGe(balance, liabilities, "stake token: balance covers stakes + withdrawable");
        assertEq(balance, liabilities, "stake token: balance == stakes + withdrawable");
    }

    /// @dev Nothing leaves the market that did not enter it, per token, and the balance is the
    /// difference exactly.
    function invariant_totalPaidOutNeverExceedsTotalDeposited() public view {
        address[2] memory tokens = [address(usd), address(stakeToken)];
        for (uint256 i = 0; i < 2; i++) {
            uint256 deposited = handler.ghost_deposited(tokens[i]);
            uint256 paidOut = handler.ghost_paidOut(tokens[i]);
            assertLe(paidOut, deposited, "paid out <= deposited");
            assertEq((i == 0 ? usd : stakeToken).balanceOf(address(market)), deposited - paidOut, "balance == in - out");
        }
    }

    /// @dev Everyone's payment-token credits (withdrawn or not) match what settled: providers get
    /// what was claimed of every rental (never above share(paid), and all of it once finalized),
    /// the treasury the fee of every finalized rental, renters every cancelled budget and every
    /// finalized refund.
    function invariant_creditsMatchSettledAmounts() public view {
        uint256 providerShares;
        uint256 fees;
        uint256 refunds;
        uint256 total = market.rentalCount();
        for (uint256 id = 1; id <= total; id++) {
            Rental memory r = market.getRental(id);
            providerShares += r.claimed;
            assertLe(r.claimed, _providerShare(r.paid, r.feeBps), "claimed <= share of paid");
            if (r.status == RentalStatus.Finalized) {
                assertEq(r.claimed, _providerShare(r.paid, r.feeBps), "finalized: all earnings credited");
                fees += uint256(r.paid) * r.feeBps / 10_000;
                refunds += uint256(r.budget) - r.paid;
            } else if (r.status == RentalStatus.Cancelled) {
                refunds += r.budget;
            }
        }
        assertEq(_credited(handler.providerList(), address(usd)), providerShares, "providers: claimed earnings");
        assertEq(_credited(handler.treasuryList(), address(usd)), fees, "treasuries: fees of finalized rentals");
        assertEq(_credited(handler.renterList(), address(usd)), refunds, "renters: refunds");
    }

    /// @dev Each provider's stake equals what it staked minus what it unstaked and was slashed.
    function invariant_stakeMatchesGhostLedger() public view {
        address[] memory ps = handler.providerList();
        for (uint256 i = 0; i < ps.length; i++) {
            Stake memory st = market.stakeOf(ps[i]);
            assertEq(
                uint256(st.active) + st.unbonding,
                handler.ghost_staked(ps[i]) - handler.ghost_unstaked(ps[i]) - handler.ghost_slashed(ps[i]),
                "stake == staked - unstaked - slashed"
            );
        }
    }

    /*//////////////////////////////////////////////////////////////
                               LIFECYCLE
    //////////////////////////////////////////////////////////////*/

    /// @dev A rental that reached Cancelled or Finalized never changes again, in any field.
    function invariant_noTransitionOutOfTerminalState() public view {
        uint256[] memory ids = handler.terminalRentals();
        for (uint256 i = 0; i < ids.length; i++) {
            Rental memory live = market.getRental(ids[i]);
            Rental memory frozen = handler.terminalSnapshot(ids[i]);
            assertTrue(
                live.status == RentalStatus.Cancelled || live.status == RentalStatus.Finalized, "terminal status kept"
            );
            assertEq(uint8(live.status), uint8(frozen.status), "terminal status unchanged");
            assertEq(keccak256(abi.encode(live)), keccak256(abi.encode(frozen)), "terminal rental unchanged");
        }
    }

    /// @dev Across every call: only the lifecycle's transitions happen; sequence, available
    /// GPU-seconds, paid and budget never decrease; paid never exceeds budget (the handler checks
    /// every rental after every call and records the first violation).
    function invariant_rentalHistoryMonotoneAndLifecycleRespected() public view {
        assertEq(handler.ghost_violationCount(), 0, handler.ghost_firstViolation());
        uint256 total = market.rentalCount();
        for (uint256 id = 1; id <= total; id++) {
            Rental memory r = market.getRental(id);
            assertLe(r.paid, r.budget, "paid <= budget");
            if (r.status == RentalStatus.Ended || r.status == RentalStatus.Finalized) {
                assertTrue(r.endReason != EndReason.None, "ended rentals carry a reason");
                assertGe(r.endedAt, r.startedAt, "ended after start");
            }
            if (r.status == RentalStatus.Cancelled) assertEq(r.paid, 0, "cancelled rentals paid nothing");
        }
    }

    /// @dev A settled fault stays settled (it can never slash twice).
    function invariant_settledFaultsNeverReopen() public view {
        uint256 n = handler.settledFaultCount();
        for (uint256 i = 0; i < n; i++) {
            (uint256 rentalId, uint32 faultId) = handler.settledFault(i);
            assertTrue(market.isFaultSettled(rentalId, faultId), "fault stays settled");
        }
    }

    /// @dev Reputation counts exactly the finalized rentals and slashes, and the score is in range.
    function invariant_reputationMatchesSettledHistory() public view {
        address[] memory ps = handler.providerList();
        for (uint256 i = 0; i < ps.length; i++) {
            Reputation memory rep = market.reputationOf(ps[i]);
            assertEq(rep.completedRentals, handler.ghost_completed(ps[i]), "completed rentals");
            assertEq(rep.abandonedRentals, handler.ghost_abandoned(ps[i]), "abandoned rentals");
            assertEq(rep.slashCount, handler.ghost_slashCount(ps[i]), "slash count");
            assertEq(rep.slashedAmount, handler.ghost_slashed(ps[i]), "slashed amount");
            assertLe(rep.deliveredFees, rep.feesPaid, "delivered fees <= fees paid");
            assertLt(market.reputationScore(ps[i]), 10_000, "score < 10000");
        }
    }

    /*//////////////////////////////////////////////////////////////
                       ECONOMICS (issue 7)
    //////////////////////////////////////////////////////////////*/

    /// @dev Total slashed from a provider for one rental never exceeds that rental's collateral
    /// (collateralPerGpu fixed at open x gpuCount), and a rental that never started holds none.
    function invariant_slashedPerRentalNeverExceedsCollateral() public view {
        uint256 total = market.rentalCount();
        for (uint256 id = 1; id <= total; id++) {
            Rental memory r = market.getRental(id);
            assertLe(r.slashed, r.collateral, "slashed <= collateral");
            if (r.startedAt == 0) assertEq(r.collateral, 0, "unstarted rentals lock nothing");
            else assertEq(r.collateral, uint256(market.rentalTerms(id).collateralPerGpu) * r.gpuCount, "collateral");
        }
    }

    /// @dev Each provider's locked stake is exactly what its started, unfinalized rentals still
    /// need (collateral - slashed), and never more than its active stake.
    function invariant_lockedCollateralCoversOpenRentals() public view {
        address[] memory ps = handler.providerList();
        uint256 total = market.rentalCount();
        for (uint256 i = 0; i < ps.length; i++) {
            uint256 needed;
            for (uint256 id = 1; id <= total; id++) {
                Rental memory r = market.getRental(id);
                bool open = r.status == RentalStatus.Active || r.status == RentalStatus.Ended;
                if (r.provider == ps[i] && open) needed += uint256(r.collateral) - r.slashed;
            }
            Stake memory st = market.stakeOf(ps[i]);
            assertEq(st.locked, needed, "locked == collateral open rentals still need");
            assertLe(st.locked, st.active, "locked <= active");
        }
    }

    /// @dev No renter's total receipts (withdrawn or withdrawable, both tokens) exceed what went
    /// into its rentals plus its capped slash compensation (0 here: the stake token is not the
    /// payment token, so slashes go to the treasury; the same-token case is
    /// EconomicsTest.test_slash_renterCompensationCappedAtWhatTheRentalCost).
    function invariant_renterReceiptsNeverExceedDepositsPlusCappedCompensation() public view {
        address[] memory rs = handler.renterList();
        for (uint256 i = 0; i < rs.length; i++) {
            uint256 received = _creditedOne(rs[i], address(usd)) + _creditedOne(rs[i], address(stakeToken));
            assertLe(received, handler.ghost_renterDeposits(rs[i]), "renter receipts <= deposits + compensation");
            assertEq(_creditedOne(rs[i], address(stakeToken)), 0, "no slash compensation across tokens");
        }
    }

    /// @dev Prints how often each handler action ran in the last run (forge test -vv).
    function afterInvariant() public view {
        string[] memory names = handler.actions();
        for (uint256 i = 0; i < names.length; i++) {
            Console.log(names[i], handler.calls(names[i]));
        }
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function _sumWithdrawable(address token) internal view returns (uint256 total) {
        address[] memory accounts = handler.accountList();
        for (uint256 i = 0; i < accounts.length; i++) {
            total += market.withdrawable(accounts[i], token);
        }
    }

    function _credited(address[] memory who, address token) internal view returns (uint256 total) {
        for (uint256 i = 0; i < who.length; i++) {
            total += _creditedOne(who[i], token);
        }
    }

    function _creditedOne(address who, address token) internal view returns (uint256) {
        return market.withdrawable(who, token) + handler.ghost_withdrawn(who, token);
    }
}
