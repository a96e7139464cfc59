// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {TransientSlot} from "@openzeppelin/contracts/utils/TransientSlot.sol";
import {SlotDerivation} from "@openzeppelin/contracts/utils/SlotDerivation.sol";

import {UsageReport} from "../types/DataTypes.sol";
import {OperatorBond, OperatorParams, SignedReport} from "../types/OperatorTypes.sol";
import {EquivocationEvidence} from "./EquivocationEvidence.sol";
import {IOperatorRegistry} from "../../interfaces/IOperatorRegistry.sol";
import {IGpuRentMarket} from "../../interfaces/IGpuRentMarket.sol";

/// @title OperatorRegistry
/// @notice Bonds, fee shares, settlement gas rebates and equivocation slashing of the oracle
/// operators of one GpuRentMarket.
/// @dev A separate contract so that the market's settlement makes no external call: the market
/// credits the operators' fee share to this contract's pull-ledger balance at finalization and
/// reads `isBonded` only in setSignerSet. Documentation is in IOperatorRegistry.
/// Money of each token this contract holds is exactly (invariant_registryBalanceIsAccounted):
/// bonds (`_totalBonded`) + rebate reserve + fees carried to the next sync + credited balances.
/// NOTE: the equal fee split pays whoever is in the signer set at sync time; anyone may call
/// sync, so operators who just joined share fees accrued before they joined (and leavers lose
/// what accrued after their last sync). Syncing often keeps the difference small.
/// NOTE: the rebate is a fixed amount per settled report set by governance; it covers a
/// submitter's gas only while governance keeps it above gas per report x gas price. It is
/// counted per report at submission and paid at claim time at the then-current rate, only while
/// the reserve holds funds; only bonded members of the current set can earn it.
/// NOTE: settleBatchFor counts a report whose rental another submitter settled to the same
/// sequence earlier in the same block (same timestamp); that costs a whole settlement by
/// someone else and pays one rebate at most.
/// NOTE: equivocation evidence is a signature over a report alone (market.usageReportDigest) or
/// over a UsageReportBatch holding it (market.usageBatchDigest): EquivocationEvidence. Nodes sign
/// a batch only over reports they have already recorded, so an honest node's batch never
/// conflicts with its single signatures.
/// NOTE: only plain ERC-20 tokens belong on the bond allowlist (no rebasing, no callbacks);
/// fee-on-transfer is detected and refused on bond.
contract OperatorRegistry is IOperatorRegistry, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SlotDerivation for bytes32;
    using TransientSlot for bytes32;
    using TransientSlot for TransientSlot.BooleanSlot;

    bytes32 private constant _GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");
    /// @inheritdoc IOperatorRegistry
    uint256 public constant REBATE_RESERVE_REPORTS = 10_000;
    uint256 private constant _BPS = 10_000;
    uint16 private constant _MAX_PROVER_REWARD_BPS = 5_000;
    uint32 private constant _MIN_UNBONDING_DELAY = 1 hours;
    uint32 private constant _MAX_UNBONDING_DELAY = 365 days;
    /// @dev Transient namespace marking rentals already counted for a rebate in one settleBatchFor
    /// (keccak256("gpurent.OperatorRegistry.rebateCounted")).
    bytes32 private constant _COUNTED_NAMESPACE = keccak256("gpurent.OperatorRegistry.rebateCounted");

    /// @dev The market (immutable): withdraw, settle, digests, signer set.
    IGpuRentMarket private immutable _market;

    // Written by setParams (governance); read by requestUnbond, sync, settle*For, proveEquivocation.
    OperatorParams private _params;
    // Written by setBondToken (governance); read by bond and isBonded.
    mapping(address token => uint256 amount) private _minBond;
    // Written by bond, requestUnbond, completeUnbond, proveEquivocation; read by isBonded, sync.
    mapping(address operator => OperatorBond bond) private _bonds;
    // Sum of active + unbonding over all bonds of a token; written where _bonds amounts change.
    mapping(address token => uint256 amount) private _totalBonded;
    // Withdrawable balances: written by sync (fee shares), claimRebates,
    // proveEquivocation (prover and treasury) and withdraw.
    mapping(address account => mapping(address token => uint256 amount)) private _balances;
    // Rebate reserve: filled by sync (rebate token only), drawn by claimRebates.
    mapping(address token => uint256 amount) private _reserve;
    // Fees pulled but not yet credited (division remainder, or no bonded member): sync only.
    mapping(address token => uint256 amount) private _carried;
    // Each (operator, rentalId, sequence) equivocation is slashable once: proveEquivocation.
    mapping(bytes32 key => bool proven) private _proven;

    /// @param market_ The GpuRentMarket whose operators this registry serves.
    /// @param admin Receives DEFAULT_ADMIN_ROLE and GOVERNANCE_ROLE (a timelock in production).
    /// @param initialParams First parameters (same ranges as setParams).
    constructor(address market_, address admin, OperatorParams memory initialParams) {
        if (market_ == address(0)) revert OperatorRegistry_InvalidParam("market");
        if (admin == address(0)) revert OperatorRegistry_InvalidParam("admin");
        _market = IGpuRentMarket(market_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(_GOVERNANCE_ROLE, admin);
        _setParams(initialParams);
    }

    // ------------------------------------------------------------------------------- bonds

    /// @inheritdoc IOperatorRegistry
    function bond(address token, uint256 amount) external nonReentrant {
        OperatorBond storage b = _bonds[msg.sender];
        // Check:
        if (_minBond[token] == 0) revert OperatorRegistry_TokenNotAllowed(token);
        address current = b.token;
        if (current != address(0) && current != token) revert OperatorRegistry_BondTokenMismatch(current, token);
        uint256 active = uint256(b.active) + amount;
        if (amount == 0 || active + b.unbonding > type(uint96).max) revert OperatorRegistry_InvalidAmount(amount);
        // Effect:
        b.token = token;
        b.active = uint96(active);
        _totalBonded[token] += amount;
        // Interaction: pull exactly `amount` (a short delivery reverts the whole call).
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - before;
        if (received != amount) revert OperatorRegistry_TransferShortfall(token, amount, received);
        emit Bonded(msg.sender, token, amount, active);
    }

    /// @inheritdoc IOperatorRegistry
    function requestUnbond(uint256 amount) external nonReentrant {
        OperatorBond storage b = _bonds[msg.sender];
        // Check:
        if (amount == 0 || amount > b.active) revert OperatorRegistry_InvalidAmount(amount);
        if (_market.isSigner(msg.sender)) revert OperatorRegistry_InSignerSet(msg.sender);
        // Effect: amounts stay within uint96 (moved, not created); the release time fits uint32
        // until 2106 because unbondingDelay <= 365 days.
        uint256 releaseAt = block.timestamp + _params.unbondingDelay;
        b.active -= uint96(amount);
        b.unbonding += uint96(amount);
        b.unbondingReleaseAt = uint32(releaseAt);
        emit UnbondRequested(msg.sender, amount, b.unbonding, releaseAt);
    }

    /// @inheritdoc IOperatorRegistry
    function completeUnbond() external nonReentrant returns (uint256) {
        return _completeUnbond(msg.sender);
    }

    /// @inheritdoc IOperatorRegistry
    function completeUnbondTo(address to) external nonReentrant returns (uint256) {
        return _completeUnbond(to);
    }

    /// @dev Pays the caller's unbonded tokens to `to`.
    function _completeUnbond(address to) private returns (uint256 amount) {
        OperatorBond storage b = _bonds[msg.sender];
        amount = b.unbonding;
        uint256 releaseAt = b.unbondingReleaseAt;
        // Check:
        if (amount == 0 || block.timestamp < releaseAt) revert OperatorRegistry_NotUnbonded(msg.sender, releaseAt);
        if (to == address(0)) revert OperatorRegistry_InvalidRecipient(to);
        // Effect:
        address token = b.token;
        b.unbonding = 0;
        b.unbondingReleaseAt = 0;
        if (b.active == 0) b.token = address(0);
        _totalBonded[token] -= amount;
        // Interaction:
        IERC20(token).safeTransfer(to, amount);
        emit Unbonded(msg.sender, token, amount);
    }

    /// @inheritdoc IOperatorRegistry
    function isBonded(address operator) public view returns (bool) {
        OperatorBond storage b = _bonds[operator];
        uint256 minimum = _minBond[b.token];
        return minimum != 0 && b.active >= minimum;
    }

    // -------------------------------------------------------------------------------- fees

    /// @inheritdoc IOperatorRegistry
    function sync(address token) external nonReentrant returns (uint256 pulled) {
        // Interaction first, on purpose: the market is a known contract and the amount is
        // measured as this contract's balance change, so nothing below trusts its return value.
        if (_market.withdrawable(address(this), token) != 0) {
            uint256 before = IERC20(token).balanceOf(address(this));
            // The market's own return value is the same number; the balance change is what counts.
            // slither-disable-next-line unused-return
            _market.withdraw(token);
            pulled = IERC20(token).balanceOf(address(this)) - before;
        }
        // Effect: bring the rebate reserve to its target (rebatePerReport x REBATE_RESERVE_REPORTS
        // for the rebate token, 0 for any other: a reserve left by an earlier rebate token or rate
        // is released), then split the rest equally among bonded members.
        uint256 amount = _carried[token] + pulled;
        uint256 toReserve = 0;
        OperatorParams memory p = _params;
        uint256 target = token == p.rebateToken ? uint256(p.rebatePerReport) * REBATE_RESERVE_REPORTS : 0;
        uint256 reserve = _reserve[token];
        if (reserve < target) {
            toReserve = target - reserve;
            if (toReserve > amount) toReserve = amount;
            _reserve[token] = reserve + toReserve;
            amount -= toReserve;
        } else if (reserve > target) {
            _reserve[token] = target;
            amount += reserve - target;
        }
        // The signer set is at most 31 addresses (the market's limit); version and threshold are
        // not needed here.
        // slither-disable-next-line unused-return
        (,, address[] memory signers) = _market.signerSet();
        uint256 count = signers.length;
        uint256 eligible = 0;
        for (uint256 i; i < count; ++i) {
            if (isBonded(signers[i])) signers[eligible++] = signers[i];
        }
        uint256 share = 0;
        uint256 carried = amount;
        if (eligible != 0) {
            share = amount / eligible;
            carried = amount % eligible;
        }
        if (share != 0) {
            for (uint256 i; i < eligible; ++i) {
                _balances[signers[i]][token] += share;
            }
        } else {
            eligible = 0; // nobody was credited
        }
        _carried[token] = carried;
        emit FeesSynced(token, pulled, toReserve, share, eligible, carried);
    }

    /// @inheritdoc IOperatorRegistry
    function settleFor(UsageReport calldata report, bytes calldata signatures)
        external
        nonReentrant
        returns (uint256 reports)
    {
        // Check:
        _requireBondedSigner(msg.sender);
        // Effect: market.settle below reverts unless the report settles, and then so does this.
        reports = 1;
        _accrueRebate(msg.sender, reports);
        // Interaction:
        _market.settle(report, signatures);
    }

    /// @inheritdoc IOperatorRegistry
    function settleBatchFor(UsageReport[] calldata reports, bytes calldata signatures)
        external
        nonReentrant
        returns (uint256 settled)
    {
        // Check:
        _requireBondedSigner(msg.sender);
        // Interaction: settleBatch skips stale reports and unsettleable rentals. The market is the
        // immutable contract this registry serves and its settlement makes no external call, so
        // nothing can re-enter here (and every state-changing entry point is nonReentrant).
        // slither-disable-next-line reentrancy-no-eth
        _market.settleBatch(reports, signatures);
        // Effect: a report counts iff its rental's settled sequence is now exactly the report's
        // and was settled at this block's time (not an older settlement resubmitted), once per
        // rental (a repeated rental counts once; the transient marks are cleared below).
        // Gas: one lastSettlement per report after the settlement, which reads the rental's slot 0,
        // warm by then (docs/economics.md gives the measured overhead).
        uint256 count = reports.length;
        for (uint256 i; i < count; ++i) {
            uint256 rentalId = reports[i].rentalId;
            TransientSlot.BooleanSlot counted = _COUNTED_NAMESPACE.deriveMapping(rentalId).asBoolean();
            if (counted.tload()) continue;
            (uint32 sequence, uint32 settledAt) = _market.lastSettlement(rentalId);
            if (sequence != reports[i].sequence || settledAt != block.timestamp) continue;
            counted.tstore(true);
            ++settled;
        }
        for (uint256 i; i < count; ++i) {
            _COUNTED_NAMESPACE.deriveMapping(reports[i].rentalId).asBoolean().tstore(false);
        }
        _accrueRebate(msg.sender, settled);
    }

    /// @inheritdoc IOperatorRegistry
    function claimRebates() external nonReentrant returns (uint256 amount) {
        OperatorBond storage b = _bonds[msg.sender];
        OperatorParams memory p = _params;
        uint256 pending = b.rebateReports;
        // Check:
        if (p.rebateToken == address(0) || p.rebatePerReport == 0 || pending == 0) {
            revert OperatorRegistry_NothingToWithdraw(msg.sender, p.rebateToken);
        }
        // Effect: pay as many whole reports as the reserve covers; the rest stays pending.
        uint256 reserve = _reserve[p.rebateToken];
        uint256 paid = pending;
        amount = pending * p.rebatePerReport;
        if (amount > reserve) {
            paid = reserve / p.rebatePerReport;
            amount = reserve - reserve % p.rebatePerReport;
        }
        // paid <= pending fits uint128; amount <= reserve.
        b.rebateReports = uint128(pending - paid);
        _reserve[p.rebateToken] = reserve - amount;
        _balances[msg.sender][p.rebateToken] += amount;
        emit RebatesClaimed(msg.sender, p.rebateToken, paid, amount);
    }

    // ------------------------------------------------------------------------ equivocation

    /// @inheritdoc IOperatorRegistry
    function proveEquivocation(UsageReport calldata a, bytes calldata sigA, UsageReport calldata b, bytes calldata sigB)
        external
        nonReentrant
        returns (address operator, uint256 slashed)
    {
        // Check: a conflict, both signed by one key.
        EquivocationEvidence.requireConflict(a, b);
        operator = ECDSA.recover(_market.usageReportDigest(a), sigA);
        _requireSameSigner(operator, ECDSA.recover(_market.usageReportDigest(b), sigB));
        slashed = _punish(operator, a.rentalId, a.sequence);
    }

    /// @inheritdoc IOperatorRegistry
    function proveEquivocationSigned(SignedReport calldata a, SignedReport calldata b)
        external
        nonReentrant
        returns (address operator, uint256 slashed)
    {
        // Check: a conflict, both signed (alone or in a batch) by one key.
        EquivocationEvidence.requireConflict(a.report, b.report);
        operator = EquivocationEvidence.signer(_market, a);
        _requireSameSigner(operator, EquivocationEvidence.signer(_market, b));
        slashed = _punish(operator, a.report.rentalId, a.report.sequence);
    }

    // -------------------------------------------------------------------------- withdrawal

    /// @inheritdoc IOperatorRegistry
    function withdraw(address token) external nonReentrant returns (uint256) {
        return _withdraw(token, msg.sender);
    }

    /// @inheritdoc IOperatorRegistry
    function withdrawTo(address token, address to) external nonReentrant returns (uint256) {
        return _withdraw(token, to);
    }

    /// @dev Pays the caller's whole balance of `token` to `to`.
    function _withdraw(address token, address to) private returns (uint256 amount) {
        amount = _balances[msg.sender][token];
        // Check:
        if (amount == 0) revert OperatorRegistry_NothingToWithdraw(msg.sender, token);
        if (to == address(0)) revert OperatorRegistry_InvalidRecipient(to);
        // Effect:
        _balances[msg.sender][token] = 0;
        // Interaction:
        IERC20(token).safeTransfer(to, amount);
        emit Withdrawn(msg.sender, token, amount);
    }

    // -------------------------------------------------------------------------- governance

    /// @inheritdoc IOperatorRegistry
    function setBondToken(address token, uint256 minimum) external onlyRole(_GOVERNANCE_ROLE) {
        if (token == address(0)) revert OperatorRegistry_InvalidParam("token");
        if (minimum > type(uint96).max) revert OperatorRegistry_InvalidParam("minBond");
        _minBond[token] = minimum;
        emit BondTokenSet(token, minimum);
    }

    /// @inheritdoc IOperatorRegistry
    function setParams(OperatorParams calldata newParams) external onlyRole(_GOVERNANCE_ROLE) {
        _setParams(newParams);
    }

    // ------------------------------------------------------------------------------- views

    /// @inheritdoc IOperatorRegistry
    function market() external view returns (address) {
        return address(_market);
    }

    /// @inheritdoc IOperatorRegistry
    function params() external view returns (OperatorParams memory) {
        return _params;
    }

    /// @inheritdoc IOperatorRegistry
    function minBond(address token) external view returns (uint256) {
        return _minBond[token];
    }

    /// @inheritdoc IOperatorRegistry
    function bondOf(address operator) external view returns (OperatorBond memory) {
        return _bonds[operator];
    }

    /// @inheritdoc IOperatorRegistry
    function balanceOf(address account, address token) external view returns (uint256) {
        return _balances[account][token];
    }

    /// @inheritdoc IOperatorRegistry
    function pendingFees(address token) external view returns (uint256) {
        return _carried[token] + _market.withdrawable(address(this), token);
    }

    /// @inheritdoc IOperatorRegistry
    function rebateReserve(address token) external view returns (uint256) {
        return _reserve[token];
    }

    /// @inheritdoc IOperatorRegistry
    function totalBonded(address token) external view returns (uint256) {
        return _totalBonded[token];
    }

    /// @inheritdoc IOperatorRegistry
    function equivocationProven(address operator, uint256 rentalId, uint64 sequence) external view returns (bool) {
        return _proven[keccak256(abi.encode(operator, rentalId, sequence))];
    }

    /// @inheritdoc IOperatorRegistry
    function GOVERNANCE_ROLE() external pure returns (bytes32) {
        return _GOVERNANCE_ROLE;
    }

    // ---------------------------------------------------------------------------- internal

    /// @dev Reverts unless `account` is a member of the market's current signer set and bonded.
    function _requireBondedSigner(address account) private view {
        if (!isBonded(account) || !_market.isSigner(account)) revert OperatorRegistry_NotBondedSigner(account);
    }

    /// @dev Counts `reports` settled reports to `submitter`'s rebate (claimed by claimRebates).
    function _accrueRebate(address submitter, uint256 reports) private {
        if (reports == 0) return;
        OperatorBond storage b = _bonds[submitter];
        // A report costs far more gas than 2**128 reports could ever be submitted.
        uint256 pending = b.rebateReports + reports;
        b.rebateReports = uint128(pending);
        emit RebateAccrued(submitter, reports, pending);
    }

    function _requireSameSigner(address signerA, address signerB) private pure {
        if (signerB != signerA) revert OperatorRegistry_DifferentSigners(signerA, signerB);
    }

    /// @dev Slashes `operator` once for (rentalId, sequence), rewarding the caller.
    function _punish(address operator, uint256 rentalId, uint64 sequence) private returns (uint256 slashed) {
        // Check:
        bytes32 key = keccak256(abi.encode(operator, rentalId, sequence));
        if (_proven[key]) revert OperatorRegistry_AlreadyProven(operator, rentalId, sequence);
        // Effect:
        _proven[key] = true;
        address token;
        uint256 reward;
        (token, slashed, reward) = _slash(operator, msg.sender);
        emit EquivocationProven(operator, rentalId, sequence, msg.sender, token, slashed, reward);
    }

    /// @dev Takes slashBps of `operator`'s whole bond (active first, then unbonding) and credits
    /// `prover` its reward and the treasury the rest. Reverts if there is no bond.
    function _slash(address operator, address prover)
        private
        returns (address token, uint256 slashed, uint256 reward)
    {
        OperatorBond storage b = _bonds[operator];
        uint256 active = b.active;
        uint256 bonded = active + b.unbonding;
        if (bonded == 0) revert OperatorRegistry_NotBonded(operator);
        OperatorParams memory p = _params;
        slashed = bonded * p.slashBps / _BPS;
        uint256 fromActive = slashed <= active ? slashed : active;
        // Both differences are bounded by what they are taken from: fromActive <= active, and
        // slashed - fromActive <= unbonding because slashed <= active + unbonding.
        unchecked {
            b.active = uint96(active - fromActive);
            b.unbonding -= uint96(slashed - fromActive);
        }
        token = b.token;
        _totalBonded[token] -= slashed;
        // The reward is a share of the (floored) slashed amount, as documented.
        // slither-disable-next-line divide-before-multiply
        reward = slashed * p.proverRewardBps / _BPS;
        _balances[prover][token] += reward;
        _balances[p.treasury][token] += slashed - reward;
    }

    /// @dev Validates and stores parameters.
    function _setParams(OperatorParams memory p) private {
        if (p.treasury == address(0)) revert OperatorRegistry_InvalidParam("treasury");
        if (p.slashBps == 0 || p.slashBps > _BPS) revert OperatorRegistry_InvalidParam("slashBps");
        if (p.proverRewardBps > _MAX_PROVER_REWARD_BPS) revert OperatorRegistry_InvalidParam("proverRewardBps");
        if (p.unbondingDelay < _MIN_UNBONDING_DELAY || p.unbondingDelay > _MAX_UNBONDING_DELAY) {
            revert OperatorRegistry_InvalidParam("unbondingDelay");
        }
        if (p.rebateToken == address(0) && p.rebatePerReport != 0) {
            revert OperatorRegistry_InvalidParam("rebatePerReport");
        }
        _params = p;
        emit ParamsUpdated(p);
    }
}
