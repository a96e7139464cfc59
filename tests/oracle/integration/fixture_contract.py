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


def deploy_fixture(url: str):
    """(BoundContract, artifact) of a freshly deployed Fixture (anvil's first key pays)."""
    from oracle.chain.anvil import ANVIL_KEYS
    from oracle.chain.contract import BoundContract, deploy, make_sender
    from oracle.chain.tx import TxPolicy

    art = fixture_artifact()
    sender = make_sender(url, ANVIL_KEYS[0], TxPolicy(receipt_poll_s=0.02))
    address, _ = deploy(sender, art.abi, art.bytecode)
    return BoundContract(sender, address, art.abi), art


def fixture_follower(fixture, tmp_path, seen: list, *, web3=None, rewinds: list | None = None, **kw):
    """An EventFollower of the Fixture's events into ``seen`` (cursor in ``tmp_path``), over ``web3``
    (default: the contract's own), polling every 50 ms."""
    from oracle.chain.events import CursorStore, EventFollower

    contract, art = fixture
    kw.setdefault("poll_interval_s", 0.05)
    return EventFollower(web3 if web3 is not None else contract.w3, contract.address, art.abi, seen.append,
                         store=CursorStore(tmp_path / "cursor.sqlite3"),
                         on_rewind=(rewinds.append if rewinds is not None else None), **kw)


def run_follower_for(follower, seconds: float) -> None:
    """``follower.run`` in a thread for ``seconds``, then stopped."""
    import threading
    import time

    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(5)
