"""Stateful property test (hypothesis rule-based state machine on a Brownie chain): random
sequences of opens, starts, top-ups, settlements (single and batch), slashes, ends, silence
closes, cancels, finalizations, withdrawals and unstakes, by random people at random times.
After every step:

- the market's token balance equals escrowed budgets + stakes + withdrawable balances;
- no rental has paid more than its budget; total paid out never exceeds total paid in;
- a rental in a terminal state (Cancelled, Finalized) never leaves it;
- whatever reverts, reverts with a custom error, never a panic or an unknown error.

Rules mostly pick a rental in a state where the call can succeed, so runs go deep; the unit
tests cover the wrong-state calls one by one. Complements the Foundry invariant suites with the
real signing path (eth_account EIP-712)."""

from brownie import chain
from brownie.exceptions import VirtualMachineError
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from conftest import BUDGET, MJ_PER_KWH, fee_of, offer_terms, open_rental, stake_for

OPEN, ACTIVE, ENDED, CANCELLED, FINALIZED = 1, 2, 3, 4, 5
PANIC_WORDS = ("overflow", "underflow", "Panic", "Division", "out of bounds", "Unknown typed error")

idx = st.integers(0, 63)
who = st.integers(0, 5)
amount = st.integers(1, 2 * BUDGET)
secs = st.integers(0, 40_000)
energy = st.integers(0, 3 * MJ_PER_KWH)
pause = st.sampled_from([1, 600, 3_601, 6 * 3_600 + 1, 24 * 3_600 + 1, 8 * 24 * 3_600])


class MarketMachine(RuleBasedStateMachine):
    """Class attributes (market, token, oracle, people, providers, offers, treasury, held_at_start,
    counts) are set by the test before the machine runs."""

    def __init__(self):
        super().__init__()
        chain.revert()  # every run starts from the state the test set up
        # rentalId -> dict(status, budget, paid, ended_at, seq, avail, energy, renter, provider, fee_bps)
        self.rentals = {rid: dict(r) for rid, r in self.initial_rentals.items()}
        self.deposited = 3 * BUDGET  # the three rentals opened by the test
        self.withdrawn = 0
        self.terminal = {}

    # -------------------------------------------------------------- helpers

    def _try(self, label, fn, *args):
        try:
            result = fn(*args)
        except VirtualMachineError as exc:
            msg = exc.revert_msg or ""
            assert not any(w in msg for w in PANIC_WORDS), f"{label}: unexpected revert {msg!r}"
            self.counts[f"{label} reverted"] = self.counts.get(f"{label} reverted", 0) + 1
            return None
        self.counts[label] = self.counts.get(label, 0) + 1
        return result

    def _refresh(self, rid):
        r = self.market.getRental(rid)
        self.rentals[rid].update(status=int(r["status"]), paid=int(r["paid"]), budget=int(r["budget"]), ended_at=int(r["endedAt"]),
                                 claimed=int(r["claimed"]))
        return self.rentals[rid]

    def _pick(self, i, *statuses):
        ids = [rid for rid, r in self.rentals.items() if r["status"] in statuses]
        return ids[i % len(ids)] if ids else None

    # -------------------------------------------------------------- rules

    @rule(w=who, a=amount, i=idx, gpus=st.integers(1, 2), start=st.booleans())
    def open(self, w, a, i, gpus, start):
        renter = self.people[w]
        offer = self.offers[i % len(self.offers)]
        if self.token.balanceOf(renter) < a:
            return
        rid = self._try("openRental", open_rental, self.market, self.token, renter, offer, a, gpus)
        if rid is None:
            return
        self.deposited += a
        r = self.market.getRental(rid)
        self.rentals[rid] = dict(seq=0, avail=0, energy=0, renter=r["renter"], provider=r["provider"], fee_bps=int(r["feeBps"]))
        if start:
            self._try("startRental", self.market.startRental, rid, {"from": r["provider"]})
        self._refresh(rid)

    @rule(i=idx)
    def start(self, i):
        rid = self._pick(i, OPEN)
        if rid is not None:
            self._try("startRental", self.market.startRental, rid, {"from": self.rentals[rid]["provider"]})
            self._refresh(rid)

    @rule(i=idx, w=who, a=amount)
    def top_up(self, i, w, a):
        rid = self._pick(i, OPEN, ACTIVE)
        payer = self.people[w]
        if rid is None or self.token.balanceOf(payer) < a:
            return
        self.token.approve(self.market, a, {"from": payer})
        if self._try("topUp", self.market.topUp, rid, a, {"from": payer}) is not None:
            self.deposited += a
        self._refresh(rid)

    @rule(i=idx, s=secs, e=energy, w=who)
    def settle(self, i, s, e, w):
        rid = self._pick(i, ACTIVE, ENDED)
        if rid is None:
            return
        r = self.rentals[rid]
        if r["status"] == ACTIVE:  # a report never attests more than the rental's GPUs had
            self.oracle.cover(rid, r["avail"] + s, r["energy"] + e)
        period_end = r["ended_at"] if r["status"] == ENDED else chain.time()
        report = self.oracle.usage(rid, r["seq"] + 1, r["avail"] + s, energyMillijoules=r["energy"] + e, periodEnd=period_end)
        tx = self._try("settle", self.market.settle, report.as_tuple(), self.oracle.sign_usage(report), {"from": self.people[w]})
        if tx is not None:
            r.update(seq=report.sequence, avail=report.availableGpuSeconds, energy=report.energyMillijoules)
        self._refresh(rid)

    @rule(s=secs)
    def settle_batch(self, s):
        live = [rid for rid, r in self.rentals.items() if r["status"] == ACTIVE][:5]
        if not live:
            return
        for rid in live:
            self.oracle.cover(rid, self.rentals[rid]["avail"] + s, self.rentals[rid]["energy"])
        reports = [
            self.oracle.usage(rid, self.rentals[rid]["seq"] + 1, self.rentals[rid]["avail"] + s,
                              energyMillijoules=self.rentals[rid]["energy"])
            for rid in live
        ]
        tx = self._try("settleBatch", self.market.settleBatch, [r.as_tuple() for r in reports],
                       self.oracle.sign_batch(reports), {"from": self.people[0]})
        if tx is not None:
            for rep in reports:
                self.rentals[rep.rentalId].update(seq=rep.sequence, avail=rep.availableGpuSeconds, energy=rep.energyMillijoules)
        for rid in live:
            self._refresh(rid)

    @rule(i=idx, fault=st.integers(0, 3), kind=st.integers(1, 4))
    def slash(self, i, fault, kind):
        rid = self._pick(i, ACTIVE, ENDED, FINALIZED)
        if rid is not None:
            self._try("slash", self.oracle.slash, rid, self.people[0], fault, kind)

    @rule(i=idx, w=st.integers(0, 2))
    def end(self, i, w):
        rid = self._pick(i, ACTIVE)
        if rid is not None:
            caller = (self.rentals[rid]["renter"], self.rentals[rid]["provider"], self.people[0])[w]
            self._try("endRental", self.market.endRental, rid, {"from": caller})
            self._refresh(rid)

    @rule(i=idx)
    def close_silent(self, i):
        rid = self._pick(i, ACTIVE)
        if rid is not None:
            self._try("closeSilentRental", self.market.closeSilentRental, rid, {"from": self.people[0]})
            self._refresh(rid)

    @rule(i=idx, w=st.integers(0, 2))
    def cancel(self, i, w):
        rid = self._pick(i, OPEN)
        if rid is not None:
            caller = (self.rentals[rid]["renter"], self.rentals[rid]["provider"], self.people[0])[w]
            self._try("cancelRental", self.market.cancelRental, rid, {"from": caller})
            self._refresh(rid)

    @rule(i=idx, w=st.integers(0, 1))
    def finalize(self, i, w):
        rid = self._pick(i, ENDED)
        if rid is not None:
            # finalization waits the rental's settlement grace (faults can still slash until then)
            until = int(self.market.getRental(rid)["endedAt"]) + int(self.market.rentalTerms(rid)["settlementGrace"])
            if w == 0 and chain.time() < until:
                chain.sleep(until - chain.time() + 1)
            caller = (self.rentals[rid]["provider"], self.people[0])[w]
            self._try("finalizeRental", self.market.finalizeRental, rid, {"from": caller})
            self._refresh(rid)

    @rule(i=idx, j=idx, w=who)
    def claim(self, i, j, w):
        """Anyone claims two rentals' accrued earnings for their providers."""
        if not self.rentals:
            return
        ids = sorted(self.rentals)
        picked = [ids[i % len(ids)], ids[j % len(ids)]]
        self._try("claim", self.market.claim, picked, {"from": self.people[w]})
        for rid in picked:
            self._refresh(rid)

    @rule(w=st.integers(0, 6))
    def withdraw(self, w):
        account = (self.people + [self.treasury])[w]
        owed = self.market.withdrawable(account, self.token)
        if owed and self._try("withdraw", self.market.withdraw, self.token, {"from": account}) is not None:
            self.withdrawn += owed

    @rule(p=st.integers(0, 1), a=amount)
    def request_unstake(self, p, a):
        self._try("requestUnstake", self.market.requestUnstake, a, {"from": self.providers[p]})

    @rule(p=st.integers(0, 1))
    def complete_unstake(self, p):
        provider = self.providers[p]
        unbonding = self.market.stakeOf(provider)["unbonding"]
        if unbonding and self._try("completeUnstake", self.market.completeUnstake, {"from": provider}) is not None:
            self.withdrawn += unbonding

    @rule(seconds=pause)
    def sleep(self, seconds):
        chain.sleep(seconds)
        chain.mine()
        for rid, r in self.rentals.items():
            if r["status"] == ACTIVE and r["budget"] == r["paid"]:
                self._refresh(rid)

    # -------------------------------------------------------------- invariants

    @invariant()
    def money_is_conserved(self):
        escrow = 0
        for rid, r in self.rentals.items():
            assert r["paid"] <= r["budget"], f"rental {rid} paid {r['paid']} > budget {r['budget']}"
            assert r["claimed"] <= r["paid"] - fee_of(r["paid"], r["fee_bps"]), f"rental {rid} claimed above its share"
            if r["status"] not in (CANCELLED, FINALIZED):
                escrow += r["budget"] - r["claimed"]  # unclaimed earnings and the fee stay in escrow
        stakes = sum(int(self.market.stakeOf(p)["active"]) + int(self.market.stakeOf(p)["unbonding"]) for p in self.providers)
        # slashes are held for their rental until it is finalized (then paid out as balances)
        stakes += sum(int(self.market.getRental(rid)["slashed"]) for rid, r in self.rentals.items() if r["status"] != FINALIZED)
        owed = sum(int(self.market.withdrawable(a, self.token)) for a in self.people + [self.treasury])
        assert self.token.balanceOf(self.market) == escrow + stakes + owed
        assert self.withdrawn <= self.deposited + self.held_at_start

    @invariant()
    def terminal_states_are_final(self):
        for rid, r in self.rentals.items():
            if rid in self.terminal:
                assert r["status"] == self.terminal[rid], f"rental {rid} left terminal state {self.terminal[rid]}"
            elif r["status"] in (CANCELLED, FINALIZED):
                self.terminal[rid] = r["status"]


def test_market_invariants_hold_under_random_operations(
    market, oracle, stablecoin, provider, provider2, renter, renter2, relayer, stranger, treasury, agent, offer_id
):
    from conftest import MIN_STAKE_PER_GPU

    stake_for(market, stablecoin, provider2, gpus=2, extra=3 * MIN_STAKE_PER_GPU)
    stake_for(market, stablecoin, provider, gpus=3)  # headroom: a few slashes do not stop new rentals
    oid2 = market.createOffer(offer_terms(stablecoin, agent, gpuCount=2), {"from": provider2}).events["OfferCreated"]["offerId"]
    stablecoin.mint(stranger, 10 * BUDGET, {"from": stranger})
    initial = {}
    for renter_, offer_, gpus, start in [(renter, offer_id, 1, True), (renter2, oid2, 2, True), (stranger, offer_id, 1, False)]:
        rid = open_rental(market, stablecoin, renter_, offer_, BUDGET, gpus)
        if start:
            market.startRental(rid, {"from": market.getRental(rid)["provider"]})
        r = market.getRental(rid)
        initial[rid] = dict(status=int(r["status"]), budget=BUDGET, paid=0, ended_at=0, seq=0, avail=0, energy=0, claimed=0,
                            renter=r["renter"], provider=r["provider"], fee_bps=int(r["feeBps"]))
    MarketMachine.initial_rentals = initial
    MarketMachine.market = market
    MarketMachine.token = stablecoin
    MarketMachine.oracle = oracle
    MarketMachine.people = [relayer, renter, renter2, provider, provider2, stranger]
    MarketMachine.providers = [provider, provider2]
    MarketMachine.offers = [offer_id, oid2]
    MarketMachine.treasury = treasury
    MarketMachine.held_at_start = stablecoin.balanceOf(market) - 3 * BUDGET  # the stakes
    MarketMachine.counts = {}
    chain.snapshot()
    run_state_machine_as_test(MarketMachine, settings=settings(max_examples=30, stateful_step_count=30, deadline=None, derandomize=True, database=None))
    print("\ncalls:", dict(sorted(MarketMachine.counts.items())))
    for label in ("settle", "settleBatch", "finalizeRental", "withdraw", "slash", "endRental"):
        assert MarketMachine.counts.get(label, 0) > 0, f"the machine never managed a successful {label}"
