"""The misbehaving test tokens behave as advertised (so the adversarial tests test the market)."""

import brownie
import pytest
from market_testkit import reverts_with


@pytest.fixture(scope="module")
def fot(FeeOnTransferToken, deployer):
    return FeeOnTransferToken.deploy("Fee", "FEE", 6, 100, {"from": deployer})


@pytest.fixture(scope="module")
def reentrant(ReentrantToken, deployer):
    return ReentrantToken.deploy("Re", "RE", 6, {"from": deployer})


@pytest.fixture(scope="module")
def blocklist(BlocklistToken, deployer):
    return BlocklistToken.deploy("Blk", "BLK", 6, {"from": deployer})


def test_fee_on_transfer_delivers_less_than_asked(fot, accounts):
    fot.mint(accounts[1], 10_000, {"from": accounts[1]})
    fot.transfer(accounts[2], 10_000, {"from": accounts[1]})
    assert fot.balanceOf(accounts[2]) == 9_900
    assert fot.totalSupply() == 9_900


def test_fee_on_transfer_fee_can_be_switched_off(fot, accounts):
    fot.setFeeBps(0, {"from": accounts[1]})
    fot.mint(accounts[1], 10_000, {"from": accounts[1]})
    fot.transfer(accounts[2], 10_000, {"from": accounts[1]})
    assert fot.balanceOf(accounts[2]) == 10_000


def test_reentrant_token_calls_back_once_and_records_outcome(reentrant, blocklist, accounts):
    reentrant.mint(accounts[1], 100, {"from": accounts[1]})
    # callback: blocklist.setBlocked(accounts[3], True) -- any call with observable effect
    data = blocklist.setBlocked.encode_input(accounts[3], True)
    reentrant.arm(1, blocklist, data, False, {"from": accounts[1]})
    tx = reentrant.transfer(accounts[2], 40, {"from": accounts[1]})
    assert blocklist.blocked(accounts[3])
    assert reentrant.callbackCount() == 1
    assert reentrant.lastCallbackSuccess()
    assert tx.events["CallbackExecuted"]["target"] == blocklist
    reentrant.transfer(accounts[2], 10, {"from": accounts[1]})
    assert reentrant.callbackCount() == 1  # disarmed after one shot


def test_reentrant_token_bubbles_a_failed_callback(reentrant, blocklist, accounts):
    reentrant.mint(accounts[1], 100, {"from": accounts[1]})
    # the callback is a transfer *from the reentrant token contract*, which is blocked
    blocklist.setBlocked(reentrant, True, {"from": accounts[1]})
    data = blocklist.transfer.encode_input(accounts[2], 0)
    reentrant.arm(3, blocklist, data, True, {"from": accounts[1]})
    with reverts_with("BlocklistToken_Blocked(address)", reentrant.address):
        reentrant.transfer(accounts[2], 40, {"from": accounts[1]})


def test_blocklist_token_refuses_blocked_recipient(blocklist, accounts):
    blocklist.mint(accounts[1], 100, {"from": accounts[1]})
    blocklist.setBlocked(accounts[2], True, {"from": accounts[1]})
    with reverts_with("BlocklistToken_Blocked(address)", accounts[2].address):
        blocklist.transfer(accounts[2], 1, {"from": accounts[1]})
    blocklist.transfer(accounts[3], 1, {"from": accounts[1]})


def test_hook_token_lets_a_receiver_refuse(HookToken, RevertingReceiver, deployer, accounts):
    token = HookToken.deploy("Hook", "HK", 6, {"from": deployer})
    receiver = RevertingReceiver.deploy({"from": deployer})
    token.mint(accounts[1], 100, {"from": accounts[1]})
    token.transfer(receiver, 10, {"from": accounts[1]})
    assert receiver.hookCalls() == 0  # not registered
    token.setHooked(receiver, True, {"from": accounts[1]})
    token.transfer(receiver, 10, {"from": accounts[1]})
    assert receiver.hookCalls() == 1
    receiver.setRefuse(True, {"from": accounts[1]})
    with reverts_with("RevertingReceiver_Refused(address,uint256)", accounts[1].address, 5):
        token.transfer(receiver, 5, {"from": accounts[1]})


def test_false_return_token_returns_false_instead_of_reverting(FalseReturnToken, deployer, accounts):
    token = FalseReturnToken.deploy("False", "FLS", 6, {"from": deployer})
    assert token.transfer.call(accounts[2], 1, {"from": accounts[1]}) is False
    tx = token.transferFrom(accounts[1], accounts[2], 1, {"from": accounts[2]})
    assert tx.return_value is False
    assert token.balanceOf(accounts[2]) == 0
