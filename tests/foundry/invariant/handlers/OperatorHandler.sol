// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {OperatorRegistry} from "../../../../contracts/operators/OperatorRegistry.sol";
import {OperatorBond, OperatorParams} from "../../../../contracts/types/OperatorTypes.sol";
import {UsageReport} from "../../../../contracts/types/DataTypes.sol";
import {TestStablecoin} from "../../../../contracts/test/TestStablecoin.sol";
import {IGpuRentMarket} from "../../../../interfaces/IGpuRentMarket.sol";
import {TestBase} from "../../utils/TestBase.sol";
import {ReportSigning} from "../../utils/ReportSigning.sol";

/// @notice What the handler needs from the invariant test (which owns the market fixture).
interface IOperatorScenario {
    /// @dev Runs and finalizes a rental whose protocol fee lands in the registry's market balance.
    function earnFees(uint72 pricePerGpuHour) external;
    /// @dev A fresh active rental's first report, quorum-signed, ready to settle.
    function freshReport() external returns (UsageReport memory report, bytes memory signatures);
    /// @dev Installs the signer set of `keys` (3 to 5 keys, threshold 3).
    function installSigners(uint256[] memory keys) external;
    function marketAddress() external view returns (address);
}

/// @notice Drives OperatorRegistry through bonding, unbonding, fee syncs, rebated settlements,
/// equivocation proofs and withdrawals, and keeps the set of accounts that may hold a balance.
/// @dev Every call is one the registry must accept (preconditions checked here), so
/// `fail_on_revert = true` turns an unexpected revert into a failure.
contract OperatorHandler is TestBase {
    OperatorRegistry public immutable registry;
    TestStablecoin public immutable usd;
    TestStablecoin public immutable bondToken;
    IOperatorScenario internal immutable scenario;
    uint256 public immutable minBond;
    address internal immutable governance;

    uint256[] internal keys; // operator keys: the five oracle keys and three outsiders
    address[] internal accounts; // every address that may hold a registry balance
    mapping(address account => bool known) internal known;
    mapping(bytes32 slot => bool proven) internal provenSlots;

    uint256 public ghost_fees; // fees the scenario credited to the registry's market balance
    uint256 public ghost_pulled; // fees sync pulled
    uint256 public ghost_rebates; // claimed
    uint256 public ghost_rebateReports; // accrued
    uint256 public ghost_slashed;
    uint256 public ghost_bonded;
    uint256 public ghost_unbonded;
    mapping(address token => uint256 amount) public ghost_withdrawn;
    uint256 public calls;

    constructor(
        OperatorRegistry registry_,
        TestStablecoin usd_,
        TestStablecoin bondToken_,
        IOperatorScenario scenario_,
        uint256[] memory oracleKeys,
        address treasury,
        address governance_
    ) {
        governance = governance_;
        registry = registry_;
        usd = usd_;
        bondToken = bondToken_;
        scenario = scenario_;
        minBond = registry_.minBond(address(bondToken_));
        for (uint256 i = 0; i < oracleKeys.length; i++) {
            keys.push(oracleKeys[i]);
            _know(vm.addr(oracleKeys[i]));
            ghost_bonded += registry_.bondOf(vm.addr(oracleKeys[i])).active;
        }
        for (uint256 i = 0; i < 3; i++) {
            uint256 key = uint256(keccak256(abi.encode("outsider", i))) % ReportSigning.SECP256K1_N;
            keys.push(key);
            _know(vm.addr(key));
        }
        _know(treasury);
        _know(address(0xB0B1)); // the prover
    }

    // ------------------------------------------------------------------------------ actions

    function bond(uint256 keySeed, uint256 amount) external {
        address operator = vm.addr(keys[keySeed % keys.length]);
        OperatorBond memory b = registry.bondOf(operator);
        amount = bound(amount, 1, 3 * minBond);
        if (uint256(b.active) + b.unbonding + amount > type(uint96).max) return;
        bondToken.mint(operator, amount);
        vm.startPrank(operator);
        bondToken.approve(address(registry), amount);
        registry.bond(address(bondToken), amount);
        vm.stopPrank();
        ghost_bonded += amount;
        calls++;
    }

    function requestUnbond(uint256 keySeed, uint256 amount) external {
        address operator = vm.addr(keys[keySeed % keys.length]);
        uint256 active = registry.bondOf(operator).active;
        if (active == 0 || _isSigner(operator)) return;
        amount = bound(amount, 1, active);
        vm.prank(operator);
        registry.requestUnbond(amount);
        calls++;
    }

    function completeUnbond(uint256 keySeed) external {
        address operator = vm.addr(keys[keySeed % keys.length]);
        OperatorBond memory b = registry.bondOf(operator);
        if (b.unbonding == 0) return;
        if (block.timestamp < b.unbondingReleaseAt) vm.warp(b.unbondingReleaseAt);
        vm.prank(operator);
        ghost_unbonded += registry.completeUnbond();
        calls++;
    }

    function earnFees(uint256 price) external {
        uint256 before = usd.balanceOf(address(registry)) + _marketBalance();
        scenario.earnFees(uint72(bound(price, 1e6, 2_000e6)));
        ghost_fees += usd.balanceOf(address(registry)) + _marketBalance() - before;
        calls++;
    }

    function sync() external {
        ghost_pulled += registry.sync(address(usd));
        calls++;
    }

    function settleFor(uint256 keySeed) external {
        address submitter = vm.addr(keys[keySeed % keys.length]);
        if (!_isSigner(submitter) || !registry.isBonded(submitter)) return;
        (UsageReport memory report, bytes memory signatures) = scenario.freshReport();
        vm.prank(submitter);
        ghost_rebateReports += registry.settleFor(report, signatures);
        calls++;
    }

    function claimRebates(uint256 keySeed) external {
        address operator = vm.addr(keys[keySeed % keys.length]);
        if (registry.bondOf(operator).rebateReports == 0 || registry.params().rebateToken == address(0)) return;
        vm.prank(operator);
        ghost_rebates += registry.claimRebates();
        calls++;
    }

    function proveEquivocation(uint256 keySeed, uint64 sequence, uint128 energyA, uint128 energyB) external {
        uint256 key = keys[keySeed % keys.length];
        address operator = vm.addr(key);
        OperatorBond memory b = registry.bondOf(operator);
        if (uint256(b.active) + b.unbonding == 0) return;
        sequence = uint64(bound(sequence, 1, 8));
        if (energyA == energyB) energyB = energyA ^ 1;
        bytes32 slot = keccak256(abi.encode(operator, uint256(99), sequence));
        if (provenSlots[slot]) return;
        provenSlots[slot] = true;
        UsageReport memory a = _report(99, sequence, energyA);
        UsageReport memory c = _report(99, sequence, energyB);
        address market = scenario.marketAddress();
        bytes memory sigA = ReportSigning.signOne(key, _digest(market, a));
        bytes memory sigC = ReportSigning.signOne(key, _digest(market, c));
        vm.prank(address(0xB0B1));
        (, uint256 slashed) = registry.proveEquivocation(a, sigA, c, sigC);
        ghost_slashed += slashed;
        calls++;
    }

    function withdraw(uint256 accountSeed, bool bondSide) external {
        address account = accounts[accountSeed % accounts.length];
        address token = bondSide ? address(bondToken) : address(usd);
        if (registry.balanceOf(account, token) == 0) return;
        vm.prank(account);
        ghost_withdrawn[token] += registry.withdraw(token);
        calls++;
    }

    /// @dev A new signer set of 3..5 of the bonded keys (the market requires bonded signers).
    function rotate(uint256 mask) external {
        uint256[] memory chosen = new uint256[](keys.length);
        uint256 n;
        for (uint256 i = 0; i < keys.length; i++) {
            if ((mask >> i) & 1 == 1 && registry.isBonded(vm.addr(keys[i])) && n < 5) chosen[n++] = keys[i];
        }
        if (n < 3) return;
        uint256[] memory set = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            set[i] = chosen[i];
        }
        scenario.installSigners(set);
        calls++;
    }

    /// @dev Governance switches the rebate between the usd token (at `rate`) and off.
    function setRebate(bool on, uint96 rate) external {
        OperatorParams memory p = registry.params();
        p.rebateToken = on ? address(usd) : address(0);
        p.rebatePerReport = on ? uint96(bound(rate, 1, 10_000)) : 0;
        vm.prank(governance);
        registry.setParams(p);
        calls++;
    }

    function warp(uint256 secondsForward) external {
        vm.warp(block.timestamp + bound(secondsForward, 1, 20 days));
        calls++;
    }

    // ------------------------------------------------------------------------------- views

    function accountCount() external view returns (uint256) {
        return accounts.length;
    }

    function accountAt(uint256 i) external view returns (address) {
        return accounts[i];
    }

    function keyCount() external view returns (uint256) {
        return keys.length;
    }

    function operatorAt(uint256 i) external view returns (address) {
        return vm.addr(keys[i]);
    }

    // ----------------------------------------------------------------------------- helpers

    function _know(address account) internal {
        if (!known[account]) {
            known[account] = true;
            accounts.push(account);
        }
    }

    function _isSigner(address account) internal view returns (bool) {
        return IGpuRentMarket(scenario.marketAddress()).isSigner(account);
    }

    function _marketBalance() internal view returns (uint256) {
        return IGpuRentMarket(scenario.marketAddress()).withdrawable(address(registry), address(usd));
    }

    function _digest(address market, UsageReport memory report) internal view returns (bytes32) {
        return IGpuRentMarket(market).usageReportDigest(report);
    }

    function _report(uint256 rentalId, uint64 sequence, uint128 energy) internal pure returns (UsageReport memory r) {
        r.rentalId = rentalId;
        r.sequence = sequence;
        r.periodEnd = 1_800_000_000;
        r.availableGpuSeconds = 600;
        r.energyMillijoules = energy;
        r.signerSetVersion = 1;
    }
}
