"""A tiny contract for testing the chain client on its own (errors, events, reorgs)."""

from oracle.chain.artifacts import ContractArtifact, compile_sources

FIXTURE_SOURCE = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

contract Fixture {
    error Fixture_TooBig(uint256 value, uint256 max);
    event Stored(address indexed who, uint256 value);
    event Pinged(uint256 indexed n);

    uint256 public value;

    function store(uint256 v) external {
        if (v > 100) revert Fixture_TooBig(v, 100);
        value = v;
        emit Stored(msg.sender, v);
    }

    function ping(uint256 n) external {
        emit Pinged(n);
    }

    function underflow() external pure returns (uint256) {
        uint256 a = 0;
        return a - 1;
    }

    function requireFalse() external pure {
        require(false, "fixture says no");
    }
}
"""


def fixture_artifact() -> ContractArtifact:
    return compile_sources({"Fixture.sol": FIXTURE_SOURCE})["Fixture"]
