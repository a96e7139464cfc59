// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {GpuRentMarket} from "../../../../contracts/GpuRentMarket.sol";
import {TestStablecoin} from "../../../../contracts/test/TestStablecoin.sol";
import {
    Offer,
    OfferTerms,
    Rental,
    RentalTerms,
    RentalStatus,
    EndReason,
    Stake,
    UsageReport,
    FaultReport,
    MarketParams
} from "../../../../contracts/types/DataTypes.sol";
import {TestBase} from "../../utils/TestBase.sol";
import {ReportSigning} from "../../utils/ReportSigning.sol";
import {MarketActions} from "../../utils/MarketActions.sol";

/// @notice Drives GpuRentMarket through every user-facing entry point with bounded inputs,
/// real quorum signatures (vm.sign with known oracle keys) and a moving clock, and keeps ghost
/// sums of every token that enters and leaves the market.
/// @dev Every call the handler makes is one the protocol must accept (preconditions are checked
/// here first), so with `fail_on_revert = true` an unexpected revert, e.g. funds that cannot
/// leave, fails the campaign. Per-call properties are asserted inline; properties across calls
/// (allowed status transitions, monotone totals) are recorded as violations that the invariant
/// test asserts are absent.
contract MarketHandler is TestBase {
    uint256 internal constant MAX_RENTALS = 48;
    uint256 internal constant MAX_OFFERS = 12;
    uint256 internal constant KEY_POOL = 7;

    GpuRentMarket public immutable market;
    TestStablecoin public immutable usd;
    TestStablecoin public immutable stakeToken;
    address public immutable governance;
    address public immutable treasury;
    address public constant SECOND_TREASURY = address(0x7EA52);
    uint256 public immutable minStakePerGpu;

    address[] internal providers;
    address[] internal renters;
    address[] internal accounts; // every address that may hold a withdrawable balance
    address internal keeper = address(0xC0FFEE);

    uint256[] internal keyPool;
    uint256[] internal currentKeys;
    uint8 internal currentThreshold;

    uint256 public currentTimestamp;
    uint256[] internal offerIds;

    /*//////////////////////////////////////////////////////////////
                                 GHOSTS
    //////////////////////////////////////////////////////////////*/

    /// @dev Tokens that entered the market (budgets, top-ups, stakes) and left it (withdrawals,
    /// completed unstakes), per token.
    mapping(address token => uint256 amount) public ghost_deposited;
    mapping(address token => uint256 amount) public ghost_paidOut;
    mapping(address account => mapping(address token => uint256 amount)) public ghost_withdrawn;

    mapping(address provider => uint256 amount) public ghost_staked;
    mapping(address provider => uint256 amount) public ghost_unstaked;
    mapping(address provider => uint256 amount) public ghost_slashed;
    mapping(address provider => uint256 count) public ghost_slashCount;
    mapping(address provider => uint256 count) public ghost_completed;
    mapping(address provider => uint256 count) public ghost_abandoned;
    /// @dev (rentalId, window, kind) that already slashed.
    mapping(bytes32 windowKey => bool used) internal ghost_windowUsed;
    /// @dev What went into each renter's rentals (budgets and top-ups, whoever paid them).
    mapping(address renter => uint256 amount) public ghost_renterDeposits;

    /// @dev Cumulative energy of the last report the handler settled per rental (the contract does
    /// not store energy).
    mapping(uint256 rentalId => uint128 energy) internal ghost_energy;
    /// @dev Last observed state of every rental, refreshed after each handler call.
    mapping(uint256 rentalId => Rental rental) internal ghost_lastSeen;
    /// @dev The state in which a rental entered a terminal status (Cancelled or Finalized).
    mapping(uint256 rentalId => Rental rental) internal ghost_terminal;
    uint256[] internal terminalRentalIds;

    struct FaultKey {
        uint256 rentalId;
        uint32 faultId;
    }

    FaultKey[] internal settledFaults;

    uint32 public ghost_signerSetVersion;
    uint256 public ghost_violationCount;
    string public ghost_firstViolation;

    mapping(string action => uint256 count) public calls;
    string[] internal actionNames;

    constructor(
        GpuRentMarket market_,
        TestStablecoin usd_,
        TestStablecoin stakeToken_,
        address governance_,
        address treasury_,
        uint256[] memory initialKeys,
        uint8 initialThreshold
    ) {
        market = market_;
        usd = usd_;
        stakeToken = stakeToken_;
        governance = governance_;
        treasury = treasury_;
        minStakePerGpu = market_.minStakePerGpu(address(stakeToken_));
        currentTimestamp = block.timestamp;
        for (uint256 i = 0; i < 3; i++) {
            providers.push(address(uint160(0xB0B000 + i)));
            renters.push(address(uint160(0xA11CE000 + i)));
        }
        for (uint256 i = 0; i < 3; i++) {
            accounts.push(providers[i]);
            accounts.push(renters[i]);
        }
        accounts.push(keeper);
        accounts.push(treasury_);
        accounts.push(SECOND_TREASURY);
        for (uint256 i = 0; i < initialKeys.length; i++) {
            currentKeys.push(initialKeys[i]);
            keyPool.push(initialKeys[i]);
        }
        for (uint256 i = initialKeys.length; i < KEY_POOL; i++) {
            keyPool.push(uint256(keccak256(abi.encode("gpurent spare oracle", i))) % ReportSigning.SECP256K1_N);
        }
        currentThreshold = initialThreshold;
        (ghost_signerSetVersion,,) = market_.signerSet();
    }

    /*//////////////////////////////////////////////////////////////
                               MODIFIERS
    //////////////////////////////////////////////////////////////*/

    /// @dev Restores the handler's clock (warps do not carry across invariant calls by
    /// themselves), counts the call, then checks transitions of every rental.
    modifier instrumented(string memory action) {
        vm.warp(currentTimestamp);
        _;
        _count(action);
        _sweep();
    }

    function _count(string memory action) internal {
        if (calls[action] == 0) actionNames.push(action);
        calls[action]++;
    }

    /*//////////////////////////////////////////////////////////////
                                STAKING
    //////////////////////////////////////////////////////////////*/

    function stake(uint256 providerSeed, uint256 amount) external instrumented("stake") {
        address p = providers[providerSeed % providers.length];
        _stakeFor(p, bound(amount, 1, 2_000e6));
    }

    function requestUnstake(uint256 providerSeed, uint256 amount) external instrumented("requestUnstake") {
        address p = providers[providerSeed % providers.length];
        Stake memory st = market.stakeOf(p);
        uint256 required = minStakePerGpu * st.listedGpus;
        if (st.locked > required) required = st.locked; // locked collateral cannot leave either
        if (st.active <= required) {
            _count("requestUnstake:skipped");
            return;
        }
        amount = bound(amount, 1, st.active - required);
        vm.prank(p);
        market.requestUnstake(amount);
        Stake memory afterSt = market.stakeOf(p);
        assertEq(afterSt.active, st.active - amount, "requestUnstake: active");
        assertEq(afterSt.unbonding, st.unbonding + amount, "requestUnstake: unbonding");
    }

    function completeUnstake(uint256 providerSeed, bool waitForRelease) external instrumented("completeUnstake") {
        address p = providers[providerSeed % providers.length];
        Stake memory st = market.stakeOf(p);
        if (st.unbonding == 0) {
            _count("completeUnstake:skipped");
            return;
        }
        if (block.timestamp < st.unbondingReleaseAt) {
            if (!waitForRelease) {
                _count("completeUnstake:skipped");
                return;
            }
            _setTime(st.unbondingReleaseAt);
        }
        uint256 balanceBefore = stakeToken.balanceOf(p);
        vm.prank(p);
        market.completeUnstake();
        assertEq(stakeToken.balanceOf(p) - balanceBefore, st.unbonding, "completeUnstake: amount");
        ghost_unstaked[p] += st.unbonding;
        ghost_paidOut[address(stakeToken)] += st.unbonding;
    }

    struct SlashPlan {
        FaultReport fault;
        address provider;
        uint256 amount;
        bytes32 windowKey;
        Stake stakeBefore;
        uint96 slashedBefore;
    }

    /// @dev A quorum-signed fault on a started rental that can still be slashed: a slashable
    /// kind (1..7 but 4, the renter's usage flag) not yet used in its window, with collateral
    /// left. The slash takes slashBps of the rental's collateral (capped by what is left) from
    /// the provider's locked stake and holds it for the rental until finalization.
    function slash(uint256 rentalSeed, uint32 faultId, uint8 kind, uint256 submitterSeed)
        external
        instrumented("slash")
    {
        (bool found, uint256 rentalId) = _findRental(rentalSeed, _isSlashable);
        if (!found) (found, rentalId) = _activeRental(rentalSeed);
        faultId = uint32(bound(faultId, 0, 3));
        if (!found || market.isFaultSettled(rentalId, faultId)) {
            _count("slash:skipped");
            return;
        }
        SlashPlan memory plan = _planSlash(rentalId, faultId, kind);
        if (ghost_windowUsed[plan.windowKey] || plan.amount == 0) {
            _count("slash:skipped");
            return;
        }
        bytes memory signatures = _quorumSign(ReportSigning.faultDigest(plan.fault, address(market)), submitterSeed);
        uint256 stakeCredits = _stakeTokenCredits();
        vm.prank(_anyActor(submitterSeed));
        market.slash(plan.fault, signatures);
        Stake memory afterSt = market.stakeOf(plan.provider);
        assertEq(afterSt.active, uint256(plan.stakeBefore.active) - plan.amount, "slash: taken from active stake");
        assertEq(afterSt.locked, uint256(plan.stakeBefore.locked) - plan.amount, "slash: taken from the lock");
        assertEq(afterSt.unbonding, plan.stakeBefore.unbonding, "slash: unbonding untouched");
        assertEq(market.getRental(rentalId).slashed, plan.slashedBefore + plan.amount, "slash: held for the rental");
        assertEq(_stakeTokenCredits(), stakeCredits, "slash: nothing credited before finalization");
        ghost_windowUsed[plan.windowKey] = true;
        ghost_slashed[plan.provider] += plan.amount;
        ghost_slashCount[plan.provider]++;
        settledFaults.push(FaultKey(rentalId, faultId));
    }

    function _planSlash(uint256 rentalId, uint32 faultId, uint8 kind) internal view returns (SlashPlan memory plan) {
        kind = uint8(bound(kind, 1, 7));
        if (kind == 4) kind = 5;
        Rental memory r = market.getRental(rentalId);
        RentalTerms memory t = market.rentalTerms(rentalId);
        uint64 observedAt = uint64(r.status == RentalStatus.Active ? block.timestamp : r.endedAt);
        plan.windowKey = keccak256(abi.encode(rentalId, (observedAt - r.startedAt) / t.slashWindowSeconds, kind));
        plan.amount = uint256(r.collateral) * t.slashBps / 10_000;
        if (plan.amount > uint256(r.collateral) - r.slashed) plan.amount = uint256(r.collateral) - r.slashed;
        plan.provider = r.provider;
        plan.stakeBefore = market.stakeOf(r.provider);
        plan.slashedBefore = r.slashed;
        plan.fault = FaultReport({
            rentalId: rentalId,
            faultId: faultId,
            kind: kind,
            observedAt: observedAt,
            evidenceHash: keccak256(abi.encode(rentalId, faultId, block.timestamp)),
            signerSetVersion: ghost_signerSetVersion
        });
    }

    function _stakeTokenCredits() internal view returns (uint256 total) {
        for (uint256 i = 0; i < accounts.length; i++) {
            total += market.withdrawable(accounts[i], address(stakeToken));
        }
    }

    /*//////////////////////////////////////////////////////////////
                                 OFFERS
    //////////////////////////////////////////////////////////////*/

    function createOffer(uint256 providerSeed, uint16 gpuCount, uint72 pricePerGpuHour, uint72 pricePerKwh)
        external
        instrumented("createOffer")
    {
        if (offerIds.length >= MAX_OFFERS) {
            _count("createOffer:skipped");
            return;
        }
        _createOffer(providerSeed, gpuCount, pricePerGpuHour, pricePerKwh);
    }

    function _createOffer(uint256 providerSeed, uint16 gpuCount, uint72 pricePerGpuHour, uint72 pricePerKwh)
        internal
        returns (uint256 offerId)
    {
        address p = providers[providerSeed % providers.length];
        gpuCount = uint16(bound(gpuCount, 1, 8));
        _coverStake(p, market.stakeOf(p).listedGpus + gpuCount);
        vm.prank(p);
        offerId = market.createOffer(_terms(gpuCount, pricePerGpuHour, pricePerKwh, providerSeed));
        offerIds.push(offerId);
    }

    function updateOffer(uint256 offerSeed, uint16 gpuCount, uint72 pricePerGpuHour, uint72 pricePerKwh)
        external
        instrumented("updateOffer")
    {
        (bool found, uint256 offerId) = _findActiveOffer(offerSeed);
        if (!found) {
            _count("updateOffer:skipped");
            return;
        }
        Offer memory o = market.getOffer(offerId);
        gpuCount = uint16(bound(gpuCount, 1, 8));
        if (gpuCount > o.gpuCount) {
            _coverStake(o.provider, market.stakeOf(o.provider).listedGpus - o.gpuCount + gpuCount);
        }
        vm.prank(o.provider);
        market.updateOffer(offerId, _terms(gpuCount, pricePerGpuHour, pricePerKwh, offerSeed));
        assertEq(market.getOffer(offerId).version, o.version + 1, "updateOffer: version");
    }

    function withdrawOffer(uint256 offerSeed) external instrumented("withdrawOffer") {
        (bool found, uint256 offerId) = _findActiveOffer(offerSeed);
        if (!found) {
            _count("withdrawOffer:skipped");
            return;
        }
        vm.prank(market.getOffer(offerId).provider);
        market.withdrawOffer(offerId);
    }

    /*//////////////////////////////////////////////////////////////
                                RENTALS
    //////////////////////////////////////////////////////////////*/

    function openRental(uint256 renterSeed, uint256 offerSeed, uint16 gpuCount, uint256 budget)
        external
        instrumented("openRental")
    {
        (bool opened,) = _openRental(renterSeed, offerSeed, gpuCount, budget);
        if (!opened) _count("openRental:skipped");
    }

    /// @dev Opens a rental on an active offer (listing one first if none is active).
    function _openRental(uint256 renterSeed, uint256 offerSeed, uint16 gpuCount, uint256 budget)
        internal
        returns (bool, uint256 rentalId)
    {
        if (market.rentalCount() >= MAX_RENTALS) return (false, 0);
        (bool found, uint256 offerId) = _findActiveOffer(offerSeed);
        if (!found) {
            if (offerIds.length >= MAX_OFFERS) return (false, 0);
            _count("createOffer:fallback");
            offerId =
                _createOffer(offerSeed, uint16(offerSeed >> 16), uint72(offerSeed >> 32), uint72(offerSeed >> 104));
        }
        Offer memory o = market.getOffer(offerId);
        // A slash may have left the provider under-staked; it tops up so renters can open.
        _coverStake(o.provider, market.stakeOf(o.provider).listedGpus);
        address r = renters[renterSeed % renters.length];
        gpuCount = uint16(bound(gpuCount, 1, o.gpuCount));
        budget = bound(budget, 1, 500e6);
        usd.mint(r, budget);
        vm.startPrank(r);
        usd.approve(address(market), budget);
        rentalId = market.openRental(offerId, o.version, gpuCount, budget, bytes32(0));
        vm.stopPrank();
        ghost_deposited[address(usd)] += budget;
        ghost_renterDeposits[r] += budget;
        _sweep(); // observe each step when a call chains several (open, then start...)
        return (true, rentalId);
    }

    function startRental(uint256 rentalSeed) external instrumented("startRental") {
        (bool found,) = _startRental(rentalSeed);
        if (!found) _count("startRental:skipped");
    }

    /// @dev Starts an open rental (opening one first if none can start).
    function _startRental(uint256 seed) internal returns (bool, uint256) {
        (bool found, uint256 rentalId) = _findRental(seed, _isStartable);
        if (!found) {
            _count("openRental:fallback");
            (found, rentalId) = _openRental(seed, seed >> 8, uint16(seed >> 16), seed >> 32);
            if (!found) return (false, 0);
        }
        Rental memory r = market.getRental(rentalId);
        // The provider's free stake must cover the collateral it locks; a slash or earlier
        // rentals may have used it up, so it stakes what it lacks.
        uint256 collateral = uint256(market.rentalTerms(rentalId).collateralPerGpu) * r.gpuCount;
        Stake memory st = market.stakeOf(r.provider);
        if (uint256(st.locked) + collateral > st.active) _stakeFor(r.provider, st.locked + collateral - st.active);
        vm.prank(r.provider);
        market.startRental(rentalId);
        Stake memory afterSt = market.stakeOf(r.provider);
        assertEq(afterSt.locked, uint256(st.locked) + collateral, "start: collateral locked");
        assertEq(market.getRental(rentalId).collateral, collateral, "start: rental collateral");
        _sweep();
        return (true, rentalId);
    }

    /// @dev An active rental (starting one first if none is active).
    function _activeRental(uint256 seed) internal returns (bool found, uint256 rentalId) {
        (found, rentalId) = _findRental(seed, _isActive);
        if (!found) {
            _count("startRental:fallback");
            (found, rentalId) = _startRental(seed);
        }
    }

    function topUp(uint256 rentalSeed, uint256 payerSeed, uint256 amount) external instrumented("topUp") {
        (bool found, uint256 rentalId) = _findRental(rentalSeed, _isOpenOrActive);
        if (!found) (found, rentalId) = _activeRental(rentalSeed);
        if (!found) {
            _count("topUp:skipped");
            return;
        }
        address payer = _anyActor(payerSeed);
        amount = bound(amount, 1, 200e6);
        usd.mint(payer, amount);
        vm.startPrank(payer);
        usd.approve(address(market), amount);
        market.topUp(rentalId, amount);
        vm.stopPrank();
        ghost_deposited[address(usd)] += amount;
        // Refunds go to the rental's renter whoever paid, so the deposit counts for the renter.
        ghost_renterDeposits[market.getRental(rentalId).renter] += amount;
    }

    function cancelRental(uint256 rentalSeed, uint256 callerSeed) external instrumented("cancelRental") {
        (bool found, uint256 rentalId) = _findRental(rentalSeed, _isOpen);
        if (!found) {
            _count("openRental:fallback");
            (found, rentalId) = _openRental(rentalSeed, callerSeed, uint16(rentalSeed >> 16), rentalSeed >> 32);
        }
        if (!found) {
            _count("cancelRental:skipped");
            return;
        }
        Rental memory r = market.getRental(rentalId);
        address caller =
            block.timestamp > r.startDeadline ? _anyActor(callerSeed) : (callerSeed % 2 == 0 ? r.renter : r.provider);
        uint256 before = market.withdrawable(r.renter, address(usd));
        vm.prank(caller);
        market.cancelRental(rentalId);
        assertEq(market.withdrawable(r.renter, address(usd)) - before, r.budget, "cancel: whole budget refunded");
    }

    function endRental(uint256 rentalSeed, uint256 callerSeed) external instrumented("endRental") {
        (bool found, uint256 rentalId) = _activeRental(rentalSeed);
        if (!found) {
            _count("endRental:skipped");
            return;
        }
        Rental memory r = market.getRental(rentalId);
        address caller;
        uint256 pick = callerSeed % 3;
        if (pick == 2 && block.timestamp >= uint256(r.startedAt) + r.maxDurationSeconds) caller = keeper;
        else caller = pick == 0 ? r.renter : r.provider;
        vm.prank(caller);
        market.endRental(rentalId);
    }

    function closeSilentRental(uint256 rentalSeed, uint256 callerSeed) external instrumented("closeSilentRental") {
        (bool found, uint256 rentalId) = _findRental(rentalSeed, _isSilent);
        if (!found) {
            _count("closeSilentRental:skipped");
            return;
        }
        vm.prank(_anyActor(callerSeed));
        market.closeSilentRental(rentalId);
    }

    /// @dev Finalizes an ended rental once its grace has passed (waiting for it if needed):
    /// refund, fee, collateral release and slash payout, each checked.
    function finalizeRental(uint256 rentalSeed, uint256 callerSeed) external instrumented("finalizeRental") {
        (bool found, uint256 rentalId) = _findRental(rentalSeed, _isEnded);
        if (!found) {
            _count("finalizeRental:skipped");
            return;
        }
        Rental memory r = market.getRental(rentalId);
        RentalTerms memory t = market.rentalTerms(rentalId);
        uint256 graceEnd = uint256(r.endedAt) + t.settlementGrace;
        if (block.timestamp < graceEnd) _setTime(graceEnd);
        address tr = market.params().treasury;
        Stake memory st = market.stakeOf(r.provider);
        uint256 renterBefore = market.withdrawable(r.renter, address(usd));
        uint256 treasuryBefore = market.withdrawable(tr, address(usd));
        // The provider's balance after: its balance now plus the rental's unclaimed earnings.
        uint256 providerAfter = market.withdrawable(r.provider, address(usd)) + market.claimable(rentalId);
        uint256 treasuryStakeBefore = market.withdrawable(tr, address(stakeToken));
        vm.prank(_anyActor(callerSeed));
        market.finalizeRental(rentalId);
        uint256 refund = market.withdrawable(r.renter, address(usd)) - renterBefore;
        uint256 fee = market.withdrawable(tr, address(usd)) - treasuryBefore;
        if (r.provider != r.renter && r.provider != tr) {
            assertEq(market.withdrawable(r.provider, address(usd)), providerAfter, "finalize: unclaimed credited");
        }
        assertEq(market.claimable(rentalId), 0, "finalize: nothing left to claim");
        assertEq(refund, uint256(r.budget) - r.paid, "finalize: refund == budget - paid");
        assertEq(fee, uint256(r.paid) * t.feeBps / 10_000, "finalize: fee on cumulative paid");
        assertEq(
            market.stakeOf(r.provider).locked,
            uint256(st.locked) - (uint256(r.collateral) - r.slashed),
            "finalize: collateral released"
        );
        // Stake and payment tokens differ here: the renter's share is 0, the treasury gets all.
        assertEq(
            market.withdrawable(tr, address(stakeToken)) - treasuryStakeBefore, r.slashed, "finalize: slashes paid out"
        );
        bool abandoned = r.endReason == EndReason.Silence
            || (r.availableGpuSeconds == 0 && r.endReason != EndReason.ByRenter);
        if (abandoned) ghost_abandoned[r.provider]++;
        else if (r.availableGpuSeconds != 0) ghost_completed[r.provider]++;
    }

    function withdraw(uint256 accountSeed, bool stakeSide) external instrumented("withdraw") {
        address token = stakeSide ? address(stakeToken) : address(usd);
        address account;
        uint256 amount;
        for (uint256 i = 0; i < accounts.length; i++) {
            account = accounts[(accountSeed % accounts.length + i) % accounts.length];
            amount = market.withdrawable(account, token);
            if (amount != 0) break;
        }
        if (amount == 0) {
            _count("withdraw:skipped");
            return;
        }
        uint256 before = TestStablecoin(token).balanceOf(account);
        vm.prank(account);
        uint256 returned = market.withdraw(token);
        assertEq(returned, amount, "withdraw: returned amount");
        assertEq(TestStablecoin(token).balanceOf(account) - before, amount, "withdraw: transferred");
        assertEq(market.withdrawable(account, token), 0, "withdraw: balance cleared");
        ghost_withdrawn[account][token] += amount;
        ghost_paidOut[token] += amount;
    }

    /*//////////////////////////////////////////////////////////////
                               SETTLEMENT
    //////////////////////////////////////////////////////////////*/

    struct ReportInput {
        uint256 sequenceJump;
        uint256 availableDelta;
        uint256 energyDelta;
        bool lowerEnergy;
        uint16 uptimeBps;
    }

    function settle(uint256 rentalSeed, ReportInput memory input, uint256 submitterSeed)
        external
        instrumented("settle")
    {
        (bool found, uint256 rentalId) = _findRental(rentalSeed, _isSettleable);
        if (!found) (found, rentalId) = _activeRental(rentalSeed);
        if (!found) {
            _count("settle:skipped");
            return;
        }
        Rental memory before = market.getRental(rentalId);
        UsageReport memory report = _nextReport(rentalId, before, input);
        bytes memory signatures = _quorumSign(ReportSigning.usageDigest(report, address(market)), submitterSeed);
        uint256 creditBefore = market.claimable(rentalId);

        vm.prank(_anyActor(submitterSeed));
        market.settle(report, signatures);

        _checkSettled(before, report, creditBefore);
    }

    struct BatchPlan {
        uint256[] picked;
        Rental[] befores;
        UsageReport[] reports;
        UsageReport last; // the report that should end up settled for the first rental
        uint256 maxCost0; // the largest cost among the first rental's reports
    }

    /// @dev Settles up to four settleable rentals under one batch signature. `extra` appends, to
    /// exercise overlapping reports: 1 = the first report again (stale, must be skipped),
    /// 2 = a newer report for the first rental, 3 = both (newer, then the stale one).
    function settleBatch(
        uint256 rentalSeed,
        uint256 count,
        ReportInput memory input,
        uint8 extra,
        uint256 submitterSeed
    ) external instrumented("settleBatch") {
        uint256[] memory picked = _pickSettleable(rentalSeed, bound(count, 1, 4));
        if (picked.length == 0) {
            _count("settleBatch:skipped");
            return;
        }
        BatchPlan memory plan = _planBatch(picked, input, uint8(bound(extra, 0, 3)));
        bytes memory signatures = _quorumSign(ReportSigning.batchDigest(plan.reports, address(market)), submitterSeed);
        // Providers may repeat across the batch, so balances are compared in aggregate: a
        // settlement credits none (earnings accrue in the rentals until claimed).
        uint256 creditsBefore = _providerCredits();

        vm.prank(_anyActor(submitterSeed));
        market.settleBatch(plan.reports, signatures);

        for (uint256 i = 0; i < plan.picked.length; i++) {
            _checkBatchEntry(plan, i);
        }
        assertEq(_providerCredits(), creditsBefore, "settleBatch: no balance credited");
    }

    function _planBatch(uint256[] memory picked, ReportInput memory input, uint8 extra)
        internal
        returns (BatchPlan memory plan)
    {
        uint256 n = picked.length;
        plan.picked = picked;
        plan.reports = new UsageReport[](n + (extra == 3 ? 2 : extra == 0 ? 0 : 1));
        plan.befores = new Rental[](n);
        for (uint256 i = 0; i < n; i++) {
            plan.befores[i] = market.getRental(picked[i]);
            input.availableDelta = uint256(keccak256(abi.encode(input.availableDelta, i)));
            input.energyDelta = uint256(keccak256(abi.encode(input.energyDelta, i)));
            plan.reports[i] = _nextReport(picked[i], plan.befores[i], input);
        }
        plan.last = plan.reports[0];
        plan.maxCost0 = _cost(plan.befores[0], plan.reports[0]);
        if (extra >= 2) {
            Rental memory virtualAfter = plan.befores[0];
            virtualAfter.sequence = uint32(plan.reports[0].sequence);
            virtualAfter.availableGpuSeconds = uint40(plan.reports[0].availableGpuSeconds);
            input.lowerEnergy = false;
            ghost_energy[picked[0]] = plan.reports[0].energyMillijoules;
            plan.last = _nextReport(picked[0], virtualAfter, input);
            plan.reports[n] = plan.last;
            uint256 c = _cost(plan.befores[0], plan.last);
            if (c > plan.maxCost0) plan.maxCost0 = c;
        }
        if (extra == 1 || extra == 3) plan.reports[plan.reports.length - 1] = plan.reports[0]; // stale by then
    }

    /// @dev Checks rental `i` of a settled batch, including that its provider's unclaimed
    /// earnings are exactly share(paid) - claimed.
    function _checkBatchEntry(BatchPlan memory plan, uint256 i) internal {
        Rental memory before = plan.befores[i];
        Rental memory afterR = market.getRental(plan.picked[i]);
        UsageReport memory settled = i == 0 ? plan.last : plan.reports[i];
        uint256 maxCost = i == 0 ? plan.maxCost0 : _cost(before, plan.reports[i]);
        // paid' = min(budget, max(paid, cost of each settled report)): the running maximum.
        uint256 expectedPaid = maxCost > before.paid ? maxCost : before.paid;
        if (expectedPaid > before.budget) expectedPaid = before.budget;
        assertEq(afterR.paid, expectedPaid, "settleBatch: paid == min(budget, running max of cost)");
        assertEq(afterR.sequence, settled.sequence, "settleBatch: sequence of the newest report");
        assertEq(afterR.availableGpuSeconds, settled.availableGpuSeconds, "settleBatch: available");
        bool exhausted = before.status == RentalStatus.Active && afterR.paid == afterR.budget;
        assertEq(
            afterR.status == RentalStatus.Ended, exhausted || before.status == RentalStatus.Ended, "settleBatch: status"
        );
        if (exhausted) assertEq(afterR.endedAt, block.timestamp, "settleBatch: exhausted rental ended now");
        ghost_energy[plan.picked[i]] = settled.energyMillijoules;
        assertEq(afterR.claimed, before.claimed, "settleBatch: claimed unchanged");
        assertEq(
            market.claimable(plan.picked[i]), _share(afterR.paid, afterR.feeBps) - afterR.claimed, "settleBatch: earnings"
        );
    }

    /// @dev Anyone claims the earnings of up to four rentals (any status, repeats allowed): each
    /// provider's balance grows by exactly the claimable amounts, which drop to zero.
    function claim(uint256 rentalSeed, uint256 count, uint256 callerSeed) external instrumented("claim") {
        uint256 total = market.rentalCount();
        if (total == 0) {
            _count("claim:skipped");
            return;
        }
        count = bound(count, 1, 4);
        uint256[] memory ids = new uint256[](count);
        uint256 expected;
        for (uint256 i = 0; i < count; i++) {
            ids[i] = (uint256(keccak256(abi.encode(rentalSeed, i))) % total) + 1;
            bool repeated;
            for (uint256 j = 0; j < i; j++) {
                if (ids[j] == ids[i]) repeated = true;
            }
            if (!repeated) expected += market.claimable(ids[i]);
        }
        uint256 creditsBefore = _providerCredits();
        vm.prank(_anyActor(callerSeed));
        uint256 claimed = market.claim(ids);
        assertEq(claimed, expected, "claim: returns the claimable sum");
        assertEq(_providerCredits() - creditsBefore, expected, "claim: providers credited exactly that");
        for (uint256 i = 0; i < count; i++) {
            assertEq(market.claimable(ids[i]), 0, "claim: nothing left to claim");
        }
    }

    /// @dev Up to `count` distinct settleable rentals (starting one if none is).
    function _pickSettleable(uint256 seed, uint256 count) internal returns (uint256[] memory picked) {
        uint256 total = market.rentalCount();
        picked = new uint256[](count);
        uint256 n;
        for (uint256 i = 0; i < total && n < count; i++) {
            uint256 id = (seed % total + i) % total + 1;
            if (_isSettleable(id)) picked[n++] = id;
        }
        if (n == 0) {
            (bool found, uint256 id) = _activeRental(seed);
            if (found) picked[n++] = id;
        }
        assembly ("memory-safe") {
            mstore(picked, n)
        }
    }

    function _cost(Rental memory r, UsageReport memory report) internal pure returns (uint256) {
        return (uint256(report.availableGpuSeconds) * r.pricePerGpuHour) / 3600
            + (uint256(report.energyMillijoules) * r.pricePerKwh) / 3_600_000_000;
    }

    function _providerCredits() internal view returns (uint256 total) {
        for (uint256 i = 0; i < providers.length; i++) {
            total += market.withdrawable(providers[i], address(usd));
        }
    }

    /*//////////////////////////////////////////////////////////////
                              TIME, ORACLES
    //////////////////////////////////////////////////////////////*/

    function warp(uint256 secondsForward) external instrumented("warp") {
        _setTime(currentTimestamp + bound(secondsForward, 1, 4 hours));
    }

    /// @dev Governance installs a random subset of the key pool with a random threshold.
    function rotateSignerSet(uint256 mask, uint256 threshold) external instrumented("rotateSignerSet") {
        mask = bound(mask, 1, (1 << KEY_POOL) - 1);
        delete currentKeys;
        for (uint256 i = 0; i < KEY_POOL; i++) {
            if (mask & (1 << i) != 0) currentKeys.push(keyPool[i]);
        }
        currentThreshold = uint8(bound(threshold, 1, currentKeys.length));
        address[] memory signers = ReportSigning.sortedAddresses(currentKeys);
        vm.prank(governance);
        market.setSignerSet(signers, currentThreshold);
        ghost_signerSetVersion++;
        (uint32 version,,) = market.signerSet();
        assertEq(version, ghost_signerSetVersion, "rotate: version bumped by one");
    }

    /// @dev Governance changes every parameter within its limits (treasury switches between two
    /// addresses). Running rentals keep every term they snapshotted at open.
    function setParams(
        bool switchTreasury,
        uint16 feeBps,
        uint16 renterShareBps,
        uint16 slashBps,
        uint32 startTimeout,
        uint32 silenceTimeout,
        uint32 settlementGrace,
        uint32 unbondingDelay,
        uint32 maxRentalDuration,
        uint32 slashWindowSeconds
    ) external instrumented("setParams") {
        MarketParams memory p = market.params();
        if (switchTreasury) p.treasury = p.treasury == treasury ? SECOND_TREASURY : treasury;
        p.protocolFeeBps = uint16(bound(feeBps, 0, 1000));
        p.renterSlashShareBps = uint16(bound(renterShareBps, 0, 10_000));
        p.slashBps = uint16(bound(slashBps, 0, 5000));
        p.startTimeout = uint32(bound(startTimeout, 10 minutes, 4 hours));
        p.silenceTimeout = uint32(bound(silenceTimeout, 1 hours, 12 hours));
        p.settlementGrace = uint32(bound(settlementGrace, 10 minutes, 4 hours));
        p.maxRentalDuration = uint32(bound(maxRentalDuration, 1 hours, 3 days));
        p.slashWindowSeconds = uint32(bound(slashWindowSeconds, 1 minutes, 2 hours));
        uint256 minUnbonding = uint256(p.maxRentalDuration) + p.settlementGrace + 1;
        p.unbondingDelay = uint32(bound(unbondingDelay, minUnbonding, minUnbonding + 2 days));
        vm.prank(governance);
        market.setParams(p);
    }

    function treasuryList() external view returns (address[] memory list) {
        list = new address[](2);
        (list[0], list[1]) = (treasury, SECOND_TREASURY);
    }

    /*//////////////////////////////////////////////////////////////
                          VIEWS FOR THE INVARIANTS
    //////////////////////////////////////////////////////////////*/

    function providerList() external view returns (address[] memory) {
        return providers;
    }

    function renterList() external view returns (address[] memory) {
        return renters;
    }

    function accountList() external view returns (address[] memory) {
        return accounts;
    }

    function terminalRentals() external view returns (uint256[] memory) {
        return terminalRentalIds;
    }

    function terminalSnapshot(uint256 rentalId) external view returns (Rental memory) {
        return ghost_terminal[rentalId];
    }

    function settledFaultCount() external view returns (uint256) {
        return settledFaults.length;
    }

    function settledFault(uint256 i) external view returns (uint256 rentalId, uint32 faultId) {
        FaultKey memory f = settledFaults[i];
        return (f.rentalId, f.faultId);
    }

    function actions() external view returns (string[] memory) {
        return actionNames;
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNALS
    //////////////////////////////////////////////////////////////*/

    function _setTime(uint256 t) internal {
        currentTimestamp = t;
        vm.warp(t);
    }

    function _anyActor(uint256 seed) internal view returns (address) {
        uint256 pick = seed % 7;
        if (pick < 3) return providers[pick];
        if (pick < 6) return renters[pick - 3];
        return keeper;
    }

    function _stakeFor(address p, uint256 amount) internal {
        MarketActions.stakeAs(market, stakeToken, p, amount);
        ghost_staked[p] += amount;
        ghost_deposited[address(stakeToken)] += amount;
    }

    /// @dev Stakes what `p` lacks to cover `gpus` listed GPUs.
    function _coverStake(address p, uint256 gpus) internal {
        uint256 required = minStakePerGpu * gpus;
        uint256 active = market.stakeOf(p).active;
        if (active < required) _stakeFor(p, required - active);
        else if (market.stakeOf(p).token == address(0)) _stakeFor(p, 1);
    }

    function _terms(uint16 gpuCount, uint72 pricePerGpuHour, uint72 pricePerKwh, uint256 seed)
        internal
        view
        returns (OfferTerms memory)
    {
        pricePerGpuHour = uint72(bound(pricePerGpuHour, 0, 20e6));
        pricePerKwh = uint72(bound(pricePerKwh, 0, 2e6));
        if (pricePerGpuHour == 0 && pricePerKwh == 0) pricePerGpuHour = 1;
        return OfferTerms({
            gpuModel: "NVIDIA H100 80GB HBM3",
            gpuCount: gpuCount,
            paymentToken: address(usd),
            pricePerGpuHour: pricePerGpuHour,
            pricePerKwh: pricePerKwh,
            region: bytes32("eu-north-1"),
            gridIntensityGPerKwh: 30,
            maxDurationSeconds: uint32(bound(seed, 1 hours, 3 days)),
            minUptimeBps: uint16(bound(seed >> 32, 0, 10_000)),
            maxGapSeconds: uint32(bound(seed >> 48, 0, 1 hours)),
            agent: address(0xA6E)
        });
    }

    function _findActiveOffer(uint256 seed) internal view returns (bool, uint256) {
        uint256 n = offerIds.length;
        for (uint256 i = 0; i < n; i++) {
            uint256 id = offerIds[(seed % n + i) % n];
            if (market.getOffer(id).active) return (true, id);
        }
        return (false, 0);
    }

    function _findRental(uint256 seed, function(uint256) internal view returns (bool) matches)
        internal
        view
        returns (bool, uint256)
    {
        uint256 total = market.rentalCount();
        for (uint256 i = 0; i < total; i++) {
            uint256 id = (seed % total + i) % total + 1;
            if (matches(id)) return (true, id);
        }
        return (false, 0);
    }

    function _status(uint256 id) internal view returns (RentalStatus) {
        return market.getRental(id).status;
    }

    function _isOpen(uint256 id) internal view returns (bool) {
        return _status(id) == RentalStatus.Open;
    }

    function _isActive(uint256 id) internal view returns (bool) {
        return _status(id) == RentalStatus.Active;
    }

    function _isEnded(uint256 id) internal view returns (bool) {
        return _status(id) == RentalStatus.Ended;
    }

    function _isOpenOrActive(uint256 id) internal view returns (bool) {
        RentalStatus s = _status(id);
        return s == RentalStatus.Open || s == RentalStatus.Active;
    }

    function _isStarted(uint256 id) internal view returns (bool) {
        return market.getRental(id).startedAt != 0;
    }

    /// @dev Open, before its deadline, and its offer still listed (startRental requires it).
    function _isStartable(uint256 id) internal view returns (bool) {
        Rental memory r = market.getRental(id);
        return r.status == RentalStatus.Open && block.timestamp <= r.startDeadline
            && market.getOffer(r.offerId).active;
    }

    /// @dev Active, or Ended within its own settlement grace.
    function _isSlashable(uint256 id) internal view returns (bool) {
        Rental memory r = market.getRental(id);
        if (r.status == RentalStatus.Active) return true;
        return r.status == RentalStatus.Ended
            && block.timestamp <= uint256(r.endedAt) + market.rentalTerms(id).settlementGrace;
    }

    /// @dev Silence counts from the last settlement or the end of the last rotation's overlap.
    function _isSilent(uint256 id) internal view returns (bool) {
        Rental memory r = market.getRental(id);
        (,, uint32 rotationOverlapEnd) = market.signerSetRotation();
        uint256 from = r.lastSettledAt > rotationOverlapEnd ? r.lastSettledAt : rotationOverlapEnd;
        return r.status == RentalStatus.Active && block.timestamp > from + market.rentalTerms(id).silenceTimeout;
    }

    function _isSettleable(uint256 id) internal view returns (bool) {
        Rental memory r = market.getRental(id);
        if (r.sequence >= type(uint32).max - 3) return false;
        if (r.status == RentalStatus.Active) return true;
        return r.status == RentalStatus.Ended
            && block.timestamp <= uint256(r.endedAt) + market.rentalTerms(id).settlementGrace;
    }

    /// @dev The next cumulative report for a rental: sequence up by 1..3, available up by at most
    /// what its GPUs could deliver in 8 hours, energy up (or, rarely, down: a quorum error the
    /// contract must absorb without overpaying).
    function _nextReport(uint256 rentalId, Rental memory r, ReportInput memory input)
        internal
        view
        returns (UsageReport memory report)
    {
        uint256 periodEnd = r.status == RentalStatus.Active ? block.timestamp : r.endedAt;
        // The report bounds: available <= gpuCount x (elapsed + 1), energy <= that x powerLimitW
        // x 1100 mJ; an earlier settled report is within them, so clamping keeps it monotone.
        uint256 maxAvailable = uint256(r.gpuCount) * (periodEnd - r.startedAt + 1);
        uint256 maxEnergy = maxAvailable * r.powerLimitW * 1100;
        uint256 availableRaw = r.availableGpuSeconds + bound(input.availableDelta, 0, uint256(r.gpuCount) * 8 hours);
        uint64 available = uint64(availableRaw < maxAvailable ? availableRaw : maxAvailable);
        uint128 energy = ghost_energy[rentalId];
        uint256 energyDelta = bound(input.energyDelta, 0, uint256(r.gpuCount) * 8 hours * 700_000);
        if (input.lowerEnergy) energy = energy > energyDelta ? energy - uint128(energyDelta) : 0;
        else energy += uint128(energyDelta);
        if (energy > maxEnergy) energy = uint128(maxEnergy);
        report = UsageReport({
            rentalId: rentalId,
            sequence: uint64(r.sequence + bound(input.sequenceJump, 1, 3)),
            periodEnd: uint64(periodEnd),
            availableGpuSeconds: available,
            busyGpuSeconds: available / 2,
            energyMillijoules: energy,
            carbonMilligrams: uint128(uint256(energy) * 30 / 3_600_000),
            uptimeBps: uint16(bound(input.uptimeBps, 0, 10_000)),
            faultFlags: 0,
            challengesPassed: 0,
            challengesFailed: 0,
            telemetryHash: keccak256(abi.encode(rentalId, r.sequence)),
            signerSetVersion: ghost_signerSetVersion
        });
    }

    function _expectedPayment(Rental memory before, UsageReport memory report) internal pure returns (uint256) {
        uint256 cost = (uint256(report.availableGpuSeconds) * before.pricePerGpuHour) / 3600
            + (uint256(report.energyMillijoules) * before.pricePerKwh) / 3_600_000_000;
        uint256 payment = cost > before.paid ? cost - before.paid : 0;
        uint256 remaining = uint256(before.budget) - before.paid;
        return payment < remaining ? payment : remaining;
    }

    function _share(uint256 paid, uint256 feeBps) internal pure returns (uint256) {
        return paid - paid * feeBps / 10_000;
    }

    function _checkSettled(Rental memory before, UsageReport memory report, uint256 creditBefore) internal {
        Rental memory afterR = market.getRental(report.rentalId);
        uint256 expectedPayment = _expectedPayment(before, report);
        assertEq(afterR.paid - before.paid, expectedPayment, "settle: payment == min(cost - paid, budget - paid)");
        assertEq(afterR.sequence, report.sequence, "settle: sequence");
        assertEq(afterR.availableGpuSeconds, report.availableGpuSeconds, "settle: available");
        assertEq(
            market.claimable(report.rentalId) - creditBefore,
            _share(afterR.paid, afterR.feeBps) - _share(before.paid, before.feeBps),
            "settle: provider earnings == share increase"
        );
        assertEq(afterR.claimed, before.claimed, "settle: credits no balance");
        bool exhausted = before.status == RentalStatus.Active && afterR.paid == afterR.budget;
        assertEq(
            afterR.status == RentalStatus.Ended, exhausted || before.status == RentalStatus.Ended, "settle: status"
        );
        ghost_energy[report.rentalId] = report.energyMillijoules;
    }

    /// @dev Signs with a random subset of the current keys of at least threshold size, in the
    /// ascending signer order the contract requires.
    function _quorumSign(bytes32 digest, uint256 seed) internal view returns (bytes memory) {
        uint256 n = currentKeys.length;
        uint256 size = bound(seed >> 8, currentThreshold, n);
        uint256[] memory keys = new uint256[](size);
        uint256 start = seed % n;
        for (uint256 i = 0; i < size; i++) {
            keys[i] = currentKeys[(start + i) % n];
        }
        return ReportSigning.signQuorum(keys, digest);
    }

    /// @dev Compares every rental with its last observed state: only the lifecycle's transitions,
    /// monotone sequence/available/paid/budget, paid <= budget, and nothing at all changes once a
    /// rental is terminal. Records the first violation, then refreshes the observation.
    function _sweep() internal {
        uint256 total = market.rentalCount();
        for (uint256 id = 1; id <= total; id++) {
            Rental memory r = market.getRental(id);
            Rental memory seen = ghost_lastSeen[id];
            if (!_allowedTransition(seen.status, r.status)) _violation(id, "illegal status transition");
            if (r.sequence < seen.sequence) _violation(id, "sequence decreased");
            if (r.availableGpuSeconds < seen.availableGpuSeconds) _violation(id, "available decreased");
            if (r.paid < seen.paid) _violation(id, "paid decreased");
            if (r.budget < seen.budget) _violation(id, "budget decreased");
            if (r.paid > r.budget) _violation(id, "paid above budget");
            if (_isTerminal(seen.status) && keccak256(abi.encode(r)) != keccak256(abi.encode(seen))) {
                _violation(id, "terminal rental changed");
            }
            if (_isTerminal(r.status) && !_isTerminal(seen.status)) {
                ghost_terminal[id] = r;
                terminalRentalIds.push(id);
            }
            ghost_lastSeen[id] = r;
        }
        (uint32 version,,) = market.signerSet();
        if (version != ghost_signerSetVersion) _violation(0, "signer set version moved without a rotation");
    }

    function _allowedTransition(RentalStatus from, RentalStatus to) internal pure returns (bool) {
        if (from == to) return true;
        if (from == RentalStatus.None) return to == RentalStatus.Open;
        if (from == RentalStatus.Open) return to == RentalStatus.Active || to == RentalStatus.Cancelled;
        if (from == RentalStatus.Active) return to == RentalStatus.Ended;
        if (from == RentalStatus.Ended) return to == RentalStatus.Finalized;
        return false; // Cancelled and Finalized are terminal
    }

    function _isTerminal(RentalStatus s) internal pure returns (bool) {
        return s == RentalStatus.Cancelled || s == RentalStatus.Finalized;
    }

    function _violation(uint256 rentalId, string memory what) internal {
        if (ghost_violationCount == 0) {
            ghost_firstViolation = string.concat("rental ", vm.toString(rentalId), ": ", what);
        }
        ghost_violationCount++;
    }
}
