// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title RevertingReceiver
/// @notice Test-only contract account that can act as a provider or renter in the market (any
///         call through `execute`) and that can refuse incoming tokens: its
///         `onTokenReceived` hook (see {HookToken}) reverts while `refuse` is set. It can also
///         re-enter: with a `reentryCall` configured, the hook makes that call instead (once).
/// @dev NOTE: not for production; anyone can drive it.
contract RevertingReceiver {
    bool public refuse;
    address public reentryTarget;
    bytes public reentryData;
    uint256 public hookCalls;
    bool public lastReentrySuccess;
    bytes public lastReentryReturnData;

    error RevertingReceiver_Refused(address from, uint256 amount);
    error RevertingReceiver_CallFailed(bytes returnData);

    function setRefuse(bool refuse_) external {
        refuse = refuse_;
    }

    function setReentry(address target, bytes calldata data) external {
        reentryTarget = target;
        reentryData = data;
    }

    /// @notice Makes an arbitrary call as this contract; bubbles up a revert unchanged.
    function execute(address target, bytes calldata data) external returns (bytes memory) {
        (bool success, bytes memory ret) = target.call(data);
        if (!success) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        return ret;
    }

    function onTokenReceived(address from, uint256 amount) external {
        hookCalls += 1;
        if (refuse) revert RevertingReceiver_Refused(from, amount);
        address target = reentryTarget;
        if (target != address(0)) {
            reentryTarget = address(0);
            (bool success, bytes memory ret) = target.call(reentryData);
            lastReentrySuccess = success;
            lastReentryReturnData = ret;
        }
    }
}
