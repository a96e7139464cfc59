// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {RentalEscrow} from "../../../contracts/abstracts/RentalEscrow.sol";
import {Offer, RentalTerms, Stake, Reputation} from "../../../contracts/types/DataTypes.sol";
import {TestBase} from "../utils/TestBase.sol";

/// @notice The market's storage features without settlement, plus setters that write whole
/// structs the way Solidity lays them out.
contract PackedViewHarness is RentalEscrow {
    constructor() EIP712("gpurent", "1") {}

    function putTerms(uint256 id, RentalTerms calldata t) external {
        _rentalTerms[id] = t;
    }

    function putOffer(uint256 id, Offer calldata o) external {
        _offers[id] = o;
    }

    function putStake(address who, Stake calldata st) external {
        _stakes[who] = st;
    }

    function putReputation(address who, Reputation calldata r) external {
        _reputations[who] = r;
    }
}

/// @notice Each PackedView layout (DataTypes.sol) read back equals the struct Solidity stored:
/// a struct change that forgets its layout fails here.
contract PackedViewLayoutTest is TestBase {
    PackedViewHarness internal harness;

    function setUp() public {
        harness = new PackedViewHarness();
    }

    function testFuzz_rentalTermsLayout_matchesTheStruct(RentalTerms calldata t, uint256 id) public {
        harness.putTerms(id, t);
        assertEq(keccak256(abi.encode(harness.rentalTerms(id))), keccak256(abi.encode(t)), "rentalTerms");
    }

    function testFuzz_offerLayout_matchesTheStruct(Offer calldata o, uint256 id) public {
        harness.putOffer(id, o);
        assertEq(keccak256(abi.encode(harness.getOffer(id))), keccak256(abi.encode(o)), "getOffer");
    }

    function testFuzz_stakeLayout_matchesTheStruct(Stake calldata st, address who) public {
        harness.putStake(who, st);
        assertEq(keccak256(abi.encode(harness.stakeOf(who))), keccak256(abi.encode(st)), "stakeOf");
    }

    function testFuzz_reputationLayout_matchesTheStruct(Reputation calldata r, address who) public {
        harness.putReputation(who, r);
        assertEq(keccak256(abi.encode(harness.reputationOf(who))), keccak256(abi.encode(r)), "reputationOf");
    }
}
