// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title MarketTimelock
/// @notice The governance of a gpurent deployment: OpenZeppelin's TimelockController, unchanged,
/// holding GpuRentMarket's DEFAULT_ADMIN_ROLE and GOVERNANCE_ROLE. Every signer-set, parameter,
/// model-table and allowlist change is scheduled by a proposer (a Safe multisig in production)
/// and executes only after `minDelay`, in public, so providers and renters can exit first.
/// @dev Deployed by scripts/deploy.py and `gpurent deploy` with admin = address(0) (the timelock
/// administers itself); the deployer renounces every market role after granting them here.
contract MarketTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
