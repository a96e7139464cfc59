// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {UsageReport} from "../../../contracts/types/DataTypes.sol";
import {OperatorFixture} from "../utils/OperatorFixture.sol";
import {OperatorHandler, IOperatorScenario} from "./handlers/OperatorHandler.sol";

/// @notice Conservation of money in the OperatorRegistry under random sequences of bonding,
/// unbonding, fee syncs, rebated settlements, equivocation proofs, withdrawals and signer-set
/// rotations (OperatorHandler). Run settings: foundry.toml `[invariant]`.
contract OperatorRegistryInvariantTest is OperatorFixture, IOperatorScenario {
    OperatorHandler internal handler;

    function setUp() public {
        _deployRegistry();
        handler = new OperatorHandler(registry, usd, bondToken, this, oracleKeys, opTreasury, governance);
        vm.label(address(handler), "OperatorHandler");
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](12);
        selectors[0] = OperatorHandler.bond.selector;
        selectors[1] = OperatorHandler.requestUnbond.selector;
        selectors[2] = OperatorHandler.completeUnbond.selector;
        selectors[3] = OperatorHandler.earnFees.selector;
        selectors[4] = OperatorHandler.sync.selector;
        selectors[5] = OperatorHandler.settleFor.selector;
        selectors[6] = OperatorHandler.proveEquivocation.selector;
        selectors[7] = OperatorHandler.withdraw.selector;
        selectors[8] = OperatorHandler.rotate.selector;
        selectors[9] = OperatorHandler.warp.selector;
        selectors[10] = OperatorHandler.claimRebates.selector;
        selectors[11] = OperatorHandler.setRebate.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    // ------------------------------------------------------------------- scenario (handler)

    function earnFees(uint72 pricePerGpuHour) external {
        _earnFees(pricePerGpuHour);
    }

    function freshReport() external returns (UsageReport memory report, bytes memory signatures) {
        uint256 rentalId = _activeRental(1, PRICE_PER_GPU_HOUR, 0, 100e6);
        vm.warp(block.timestamp + 60);
        report = _report(rentalId, 1, 60, 0);
        signatures = _signUsage(report);
    }

    function installSigners(uint256[] memory keys) external {
        delete oracleKeys;
        for (uint256 i = 0; i < keys.length; i++) {
            oracleKeys.push(keys[i]);
        }
        _installSigners(keys, THRESHOLD);
    }

    function marketAddress() external view returns (address) {
        return address(market);
    }

    // -------------------------------------------------------------------------- invariants

    /// @dev For each token: what the registry holds is exactly bonds + rebate reserve + fees
    /// carried to the next sync + every account's withdrawable balance.
    function invariant_registryBalanceIsAccounted() public view {
        address[2] memory tokens = [address(usd), address(bondToken)];
        for (uint256 t = 0; t < 2; t++) {
            address token = tokens[t];
            uint256 balances;
            for (uint256 i = 0; i < handler.accountCount(); i++) {
                balances += registry.balanceOf(handler.accountAt(i), token);
            }
            uint256 carried = registry.pendingFees(token) - market.withdrawable(address(registry), token);
            assertEq(
                _tokenBalance(token),
                registry.totalBonded(token) + registry.rebateReserve(token) + carried + balances,
                "registry balance == bonds + reserve + carried fees + balances"
            );
        }
    }

    /// @dev totalBonded is the sum of every operator's active + unbonding bond, and equals what
    /// was bonded minus what was unbonded and slashed.
    function invariant_totalBondedIsTheSumOfBonds() public view {
        uint256 sum;
        for (uint256 i = 0; i < handler.keyCount(); i++) {
            sum += registry.bondOf(handler.operatorAt(i)).active + registry.bondOf(handler.operatorAt(i)).unbonding;
        }
        assertEq(registry.totalBonded(address(bondToken)), sum, "totalBonded == sum of bonds");
        assertEq(
            sum,
            handler.ghost_bonded() - handler.ghost_unbonded() - handler.ghost_slashed(),
            "bonded - unbonded - slashed"
        );
    }

    /// @dev Every fee the market credited the registry is either still in the market, or was
    /// pulled (and is in the reserve, carried, or credited); pulled fees never exceed earned ones.
    function invariant_feesPulledNeverExceedFeesEarned() public view {
        assertEq(
            handler.ghost_fees(),
            handler.ghost_pulled() + market.withdrawable(address(registry), address(usd)),
            "earned == pulled + still in the market"
        );
    }

    // ----------------------------------------------------------------------------- helpers

    function _tokenBalance(address token) internal view returns (uint256) {
        return token == address(usd) ? usd.balanceOf(address(registry)) : bondToken.balanceOf(address(registry));
    }
}
