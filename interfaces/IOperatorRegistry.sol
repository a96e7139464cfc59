// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {UsageReport} from "../contracts/types/DataTypes.sol";
import {OperatorBond, OperatorParams, SignedReport} from "../contracts/types/OperatorTypes.sol";

/// @title IOperatorRegistry
/// @notice Oracle operators' economics beside one GpuRentMarket: bonds, the operators' share of
/// the protocol fee, a settlement gas rebate, and slashing for equivocation.
/// @dev The market never calls this contract during settlement: it credits the operators' fee
/// share to this contract's pull-ledger balance at finalization (like the treasury's), and only
/// reads `isBonded` when governance installs a signer set. Everything else flows from here to
/// the market (withdraw, settle, digests, the signer set).
/// Fee rule (docs/economics.md, "Operators"): `sync(token)` pulls the registry's market balance
/// of `token`; for the rebate token it first refills the rebate reserve up to
/// `rebatePerReport x REBATE_RESERVE_REPORTS` (a reserve above that target, or of a token that is
/// no longer the rebate token, is released into the split); the rest (plus the remainder of
/// earlier syncs) is split equally among the members of the market's current signer set that are
/// bonded, the division remainder carried to the next sync.
/// Gas rebate: a bonded member of the current signer set that submits quorum-signed reports
/// through `settleFor` / `settleBatchFor` accrues one rebate report per rental that the call
/// settled to the submitted sequence; `claimRebates` pays `rebatePerReport` per accrued report
/// out of the rebate reserve (as many as the reserve covers; the rest stays accrued).
/// Equivocation: two usage reports for the same rental and sequence that differ in any field
/// other than `signerSetVersion`, each signed (EIP-712, the market's domain) by the same key,
/// alone (`settle`'s digest) or inside a UsageReportBatch (`settleBatch`'s), are proof; each
/// (operator, rentalId, sequence) is slashable once.
interface IOperatorRegistry {
    /// @notice Emitted when an operator adds to its bond.
    event Bonded(address indexed operator, address indexed token, uint256 amount, uint256 activeBond);
    /// @notice Emitted when an operator moves `amount` of its bond into unbonding.
    event UnbondRequested(address indexed operator, uint256 amount, uint256 unbondingBond, uint256 releaseAt);
    /// @notice Emitted when unbonded tokens are returned to the operator.
    event Unbonded(address indexed operator, address indexed token, uint256 amount);
    /// @notice Emitted when governance allows a bond token (minBond > 0) or disallows it (0).
    event BondTokenSet(address indexed token, uint256 minBond);
    /// @notice Emitted when governance changes the parameters.
    event ParamsUpdated(OperatorParams params);
    /// @notice Emitted by sync.
    /// @param pulled Amount withdrawn from the market by this sync.
    /// @param toReserve Amount added to the rebate reserve.
    /// @param sharePerOperator Amount credited to each of `operators` bonded signer-set members.
    /// @param carried Remainder kept for the next sync.
    event FeesSynced(
        address indexed token,
        uint256 pulled,
        uint256 toReserve,
        uint256 sharePerOperator,
        uint256 operators,
        uint256 carried
    );
    /// @notice Emitted when settleFor / settleBatchFor counts settled reports to a submitter.
    /// @param reports Reports this call settled and counted.
    /// @param pendingReports The submitter's accrued, unclaimed rebate reports.
    event RebateAccrued(address indexed submitter, uint256 reports, uint256 pendingReports);
    /// @notice Emitted when accrued rebate reports are paid out of the reserve.
    event RebatesClaimed(address indexed operator, address indexed token, uint256 reports, uint256 amount);
    /// @notice Emitted when an equivocation is proven and the operator's bond slashed.
    event EquivocationProven(
        address indexed operator,
        uint256 indexed rentalId,
        uint64 sequence,
        address indexed prover,
        address token,
        uint256 slashed,
        uint256 proverReward
    );
    /// @notice Emitted when an account withdraws its balance of a token from the registry.
    event Withdrawn(address indexed account, address indexed token, uint256 amount);

    /// @notice A parameter is out of range (`field` names it).
    error OperatorRegistry_InvalidParam(string field);
    /// @notice `token` is not an allowed bond token.
    error OperatorRegistry_TokenNotAllowed(address token);
    /// @notice The operator already bonds another token (`current`); unbond it fully first.
    error OperatorRegistry_BondTokenMismatch(address current, address token);
    /// @notice Amount is zero, above the active bond, or the bond would exceed uint96.
    error OperatorRegistry_InvalidAmount(uint256 amount);
    /// @notice Token delivered `received` instead of `expected` (fee-on-transfer tokens refused).
    error OperatorRegistry_TransferShortfall(address token, uint256 expected, uint256 received);
    /// @notice The operator is in the market's current signer set and cannot start unbonding.
    error OperatorRegistry_InSignerSet(address operator);
    /// @notice Nothing unbonding, or the unbonding delay runs until `releaseAt`.
    error OperatorRegistry_NotUnbonded(address operator, uint256 releaseAt);
    /// @notice Only a bonded member of the market's current signer set may do this.
    error OperatorRegistry_NotBondedSigner(address caller);
    /// @notice The two reports are not for the same rental and sequence.
    error OperatorRegistry_DifferentSlot(uint256 rentalIdA, uint64 sequenceA, uint256 rentalIdB, uint64 sequenceB);
    /// @notice The two reports agree on every field but signerSetVersion: no equivocation.
    error OperatorRegistry_SameReport(uint256 rentalId, uint64 sequence);
    /// @notice The two signatures recover to different addresses.
    error OperatorRegistry_DifferentSigners(address signerA, address signerB);
    /// @notice The signer holds no bond to slash.
    error OperatorRegistry_NotBonded(address operator);
    /// @notice This (operator, rentalId, sequence) equivocation was already proven.
    error OperatorRegistry_AlreadyProven(address operator, uint256 rentalId, uint64 sequence);
    /// @notice Nothing to withdraw.
    error OperatorRegistry_NothingToWithdraw(address account, address token);
    /// @notice A withdrawal or unbond names no recipient (the zero address).
    error OperatorRegistry_InvalidRecipient(address to);
    /// @notice The batch evidence does not hold the report's struct hash at position `index`.
    error OperatorRegistry_NotInBatch(uint256 rentalId, uint256 index);

    /// @notice Adds `amount` of `token` to the caller's bond (pulled with transferFrom).
    /// @dev `token` must be allowed; while any bond exists it must be the bond's token.
    function bond(address token, uint256 amount) external;

    /// @notice Moves `amount` of the caller's active bond into unbonding; it can be withdrawn
    /// with completeUnbond after `unbondingDelay` and stays slashable until then.
    /// @dev Reverts while the caller is in the market's current signer set (governance must
    /// rotate it out first). A new request restarts the delay for everything unbonding.
    function requestUnbond(uint256 amount) external;

    /// @notice Returns the caller's unbonded tokens once the unbonding delay has passed.
    /// @return amount Amount transferred.
    function completeUnbond() external returns (uint256 amount);

    /// @notice Like completeUnbond, but pays `to` (for an operator the bond token refuses to send
    /// to, e.g. a USDC-style blocklist). Unbonded names the caller; the token's Transfer names `to`.
    /// @return amount Amount transferred.
    function completeUnbondTo(address to) external returns (uint256 amount);

    /// @notice Whether `operator`'s active bond is at least the minimum of its (still allowed)
    /// bond token. The market requires this of every signer it installs.
    function isBonded(address operator) external view returns (bool);

    /// @notice Pulls this registry's market balance of `token` and distributes it by the fee
    /// rule above. Callable by anyone.
    /// @return pulled Amount withdrawn from the market.
    function sync(address token) external returns (uint256 pulled);

    /// @notice Settles one report on the market (the market checks the quorum; it reverts unless
    /// the report settles) and accrues one rebate report to the caller. Only a bonded member of
    /// the current signer set.
    /// @return reports 1.
    function settleFor(UsageReport calldata report, bytes calldata signatures) external returns (uint256 reports);

    /// @notice settleBatch on the market, accruing to the caller one rebate report per rental
    /// whose settled sequence is now the submitted one, settled at this block's timestamp.
    /// Only a bonded member of the current signer set.
    /// @return settled Reports counted.
    function settleBatchFor(UsageReport[] calldata reports, bytes calldata signatures)
        external
        returns (uint256 settled);

    /// @notice Pays the caller's accrued rebate reports at `rebatePerReport` each into its
    /// withdrawable balance of the rebate token, as many as the reserve covers.
    /// @return amount Amount credited.
    function claimRebates() external returns (uint256 amount);

    /// @notice Slashes the operator that signed both `a` and `b`, crediting the caller
    /// `proverRewardBps` of the slashed amount and the treasury the rest (both withdrawable).
    /// @param sigA 65-byte r||s||v signature over market.usageReportDigest(a).
    /// @param sigB 65-byte r||s||v signature over market.usageReportDigest(b).
    /// @return operator The slashed operator.
    /// @return slashed Amount taken from its bond.
    function proveEquivocation(UsageReport calldata a, bytes calldata sigA, UsageReport calldata b, bytes calldata sigB)
        external
        returns (address operator, uint256 slashed);

    /// @notice Like proveEquivocation, with either report (or both) signed inside a
    /// UsageReportBatch (the signature nodes give for settleBatch) instead of alone: each
    /// evidence names the struct hashes of its batch's reports and the report's position.
    /// @dev Same rules as proveEquivocation: same rentalId and sequence, different content
    /// (ignoring signerSetVersion), one signing key, once per (operator, rentalId, sequence).
    /// Reverts with OperatorRegistry_NotInBatch when the batch does not hold the report's struct
    /// hash at the given position.
    /// @return operator The slashed operator.
    /// @return slashed Amount taken from its bond.
    function proveEquivocationSigned(SignedReport calldata a, SignedReport calldata b)
        external
        returns (address operator, uint256 slashed);

    /// @notice Pays the caller its whole registry balance of `token` (fee shares, claimed rebates,
    /// prover rewards, the treasury's share of slashes).
    function withdraw(address token) external returns (uint256 amount);

    /// @notice Pays the caller's whole registry balance of `token` to `to` (for a payee the token
    /// refuses to send to, e.g. a USDC-style blocklist). Withdrawn names the caller as `account`;
    /// the token's Transfer names `to`.
    function withdrawTo(address token, address to) external returns (uint256 amount);

    /// @notice Allows `token` for bonds with `minBond`, or disallows it (0). Only GOVERNANCE_ROLE.
    /// @dev Existing bonds of a disallowed token can still be unbonded (and slashed), but no
    /// longer count for isBonded.
    function setBondToken(address token, uint256 minimum) external;

    /// @notice Sets all parameters. Only GOVERNANCE_ROLE.
    /// @dev Ranges: treasury non-zero; slashBps 1..10000; proverRewardBps <= 5000;
    /// unbondingDelay 1 hour..365 days; rebatePerReport 0 when rebateToken is 0.
    function setParams(OperatorParams calldata newParams) external;

    /// @notice The market this registry serves.
    function market() external view returns (address);

    /// @notice Current parameters.
    function params() external view returns (OperatorParams memory);

    /// @notice Minimum bond of `token` (0: not an allowed bond token).
    function minBond(address token) external view returns (uint256);

    /// @notice `operator`'s bond.
    function bondOf(address operator) external view returns (OperatorBond memory);

    /// @notice Withdrawable registry balance of `account` in `token`.
    function balanceOf(address account, address token) external view returns (uint256);

    /// @notice Fees of `token` not yet credited to anyone: the remainder carried from the last
    /// sync plus what the market holds for this registry (the next sync's input).
    function pendingFees(address token) external view returns (uint256);

    /// @notice The rebate reserve of `token`.
    function rebateReserve(address token) external view returns (uint256);

    /// @notice Sum of all bonds (active + unbonding) in `token`.
    function totalBonded(address token) external view returns (uint256);

    /// @notice Whether the equivocation of `operator` at (`rentalId`, `sequence`) was proven.
    function equivocationProven(address operator, uint256 rentalId, uint64 sequence) external view returns (bool);

    /// @notice The rebate reserve target is `rebatePerReport` times this many reports.
    function REBATE_RESERVE_REPORTS() external view returns (uint256);

    /// @notice keccak256("GOVERNANCE_ROLE").
    function GOVERNANCE_ROLE() external view returns (bytes32);
}
