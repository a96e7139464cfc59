// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {GpuRentMarket} from "../../../contracts/GpuRentMarket.sol";
import {TestStablecoin} from "../../../contracts/test/TestStablecoin.sol";
import {
    MarketParams,
    OfferTerms,
    Offer,
    Rental,
    RentalStatus,
    UsageReport,
    FaultReport
} from "../../../contracts/types/DataTypes.sol";
import {TestBase} from "./TestBase.sol";
import {ReportSigning} from "./ReportSigning.sol";
import {MarketActions} from "./MarketActions.sol";

/// @notice A deployed market with a payment token, a stake token, five oracle keys (threshold 3)
/// and helpers to stake, list, rent and settle with real quorum signatures.
abstract contract MarketFixture is TestBase {
    // Parameters (6-decimal tokens: 1e6 = one token).
    uint16 internal constant FEE_BPS = 250;
    uint16 internal constant RENTER_SLASH_SHARE_BPS = 6000;
    uint16 internal constant SLASH_BPS = 1000;
    uint32 internal constant START_TIMEOUT = 1 hours;
    uint32 internal constant SILENCE_TIMEOUT = 6 hours;
    uint32 internal constant SETTLEMENT_GRACE = 2 hours;
    uint32 internal constant MAX_RENTAL_DURATION = 30 days;
    uint32 internal constant UNBONDING_DELAY = 33 days; // > MAX_RENTAL_DURATION + SETTLEMENT_GRACE
    uint32 internal constant SLASH_WINDOW = 1 hours;
    uint96 internal constant REPUTATION_PRIOR = 100e6; // 100 tokens of fees
    bytes32 internal constant H100 = "NVIDIA H100 80GB HBM3";
    uint16 internal constant H100_POWER_LIMIT_W = 700;
    uint32 internal constant H100_MEMORY_MIB = 81_559;
    uint256 internal constant MIN_STAKE_PER_GPU = 100e6;
    uint72 internal constant PRICE_PER_GPU_HOUR = 2_500_000; // 2.5 tokens per GPU-hour
    uint72 internal constant PRICE_PER_KWH = 150_000; // 0.15 token per kWh
    uint256 internal constant ORACLE_COUNT = 5;
    uint8 internal constant THRESHOLD = 3;

    GpuRentMarket internal market;
    TestStablecoin internal usd; // payment token
    TestStablecoin internal stakeToken;

    address internal governance = address(0x60F);
    address internal treasury = address(0x7EA5);
    address internal provider = address(0xB0B);
    address internal renter = address(0xA11CE);
    address internal agent = address(0xA6E);
    address internal keeper = address(0xC0FFEE);

    uint256[] internal oracleKeys;

    function _deployMarket() internal {
        vm.warp(1_800_000_000);
        usd = new TestStablecoin();
        stakeToken = new TestStablecoin();
        market = new GpuRentMarket(governance, _defaultParams());
        vm.startPrank(governance);
        market.setPaymentToken(address(usd), true);
        market.setStakeToken(address(stakeToken), MIN_STAKE_PER_GPU);
        market.setGpuModel(H100, H100_POWER_LIMIT_W, H100_MEMORY_MIB);
        vm.stopPrank();
        delete oracleKeys;
        for (uint256 i = 0; i < ORACLE_COUNT; i++) {
            oracleKeys.push(uint256(keccak256(abi.encode("gpurent oracle", i))) % ReportSigning.SECP256K1_N);
        }
        _installSigners(oracleKeys, THRESHOLD);
        vm.label(address(market), "GpuRentMarket");
        vm.label(address(usd), "usd");
        vm.label(address(stakeToken), "stakeToken");
        vm.label(provider, "provider");
        vm.label(renter, "renter");
        vm.label(treasury, "treasury");
    }

    function _defaultParams() internal view returns (MarketParams memory) {
        return MarketParams({
            treasury: treasury,
            protocolFeeBps: FEE_BPS,
            renterSlashShareBps: RENTER_SLASH_SHARE_BPS,
            slashBps: SLASH_BPS,
            startTimeout: START_TIMEOUT,
            silenceTimeout: SILENCE_TIMEOUT,
            settlementGrace: SETTLEMENT_GRACE,
            unbondingDelay: UNBONDING_DELAY,
            maxRentalDuration: MAX_RENTAL_DURATION,
            slashWindowSeconds: SLASH_WINDOW,
            reputationPrior: REPUTATION_PRIOR
        });
    }

    function _installSigners(uint256[] memory keys, uint8 threshold) internal {
        address[] memory signers = ReportSigning.sortedAddresses(keys);
        vm.prank(governance);
        market.setSignerSet(signers, threshold);
    }

    function _signerSetVersion() internal view returns (uint32 version) {
        (version,,) = market.signerSet();
    }

    /// @dev The first `THRESHOLD` oracle keys.
    function _quorumKeys() internal view returns (uint256[] memory keys) {
        keys = new uint256[](THRESHOLD);
        for (uint256 i = 0; i < THRESHOLD; i++) {
            keys[i] = oracleKeys[i];
        }
    }

    function _stake(address who, uint256 amount) internal {
        MarketActions.stakeAs(market, stakeToken, who, amount);
    }

    function _terms(uint16 gpuCount, uint72 pricePerGpuHour, uint72 pricePerKwh)
        internal
        view
        returns (OfferTerms memory)
    {
        return OfferTerms({
            gpuModel: H100,
            gpuCount: gpuCount,
            paymentToken: address(usd),
            pricePerGpuHour: pricePerGpuHour,
            pricePerKwh: pricePerKwh,
            region: bytes32("eu-north-1"),
            gridIntensityGPerKwh: 30,
            maxDurationSeconds: 30 days,
            minUptimeBps: 9500,
            maxGapSeconds: 300,
            agent: agent
        });
    }

    /// @dev Stakes enough for `gpuCount` more GPUs and lists an offer.
    function _list(address who, uint16 gpuCount, uint72 pricePerGpuHour, uint72 pricePerKwh)
        internal
        returns (uint256 offerId)
    {
        _stake(who, MIN_STAKE_PER_GPU * gpuCount);
        vm.prank(who);
        offerId = market.createOffer(_terms(gpuCount, pricePerGpuHour, pricePerKwh));
    }

    function _open(address who, uint256 offerId, uint16 gpuCount, uint256 budget) internal returns (uint256 rentalId) {
        usd.mint(who, budget);
        vm.startPrank(who);
        usd.approve(address(market), budget);
        rentalId = market.openRental(offerId, market.getOffer(offerId).version, gpuCount, budget, bytes32(0));
        vm.stopPrank();
    }

    /// @dev Lists an offer for `provider` and opens and starts a rental for `renter`.
    function _activeRental(uint16 gpuCount, uint72 pricePerGpuHour, uint72 pricePerKwh, uint256 budget)
        internal
        returns (uint256 rentalId)
    {
        uint256 offerId = _list(provider, gpuCount, pricePerGpuHour, pricePerKwh);
        rentalId = _open(renter, offerId, gpuCount, budget);
        vm.prank(provider);
        market.startRental(rentalId);
    }

    /// @dev Warps forward (never back) to the first time at which a report ending now with
    /// `availableGpuSeconds` and `energyMillijoules` is within the report bounds of an Active
    /// rental: available <= gpuCount x (elapsed + 1) and energy <= that x powerLimitW x 1100.
    function _warpToCover(uint256 rentalId, uint256 availableGpuSeconds, uint256 energyMillijoules) internal {
        Rental memory r = market.getRental(rentalId);
        if (r.status != RentalStatus.Active) return;
        uint256 gpuSeconds = availableGpuSeconds;
        uint256 perGpuSecond = uint256(r.powerLimitW) * 1100;
        uint256 energySeconds = (energyMillijoules + perGpuSecond - 1) / perGpuSecond;
        if (energySeconds > gpuSeconds) gpuSeconds = energySeconds;
        uint256 secondsNeeded = (gpuSeconds + r.gpuCount - 1) / r.gpuCount; // elapsed + 1
        uint256 at = uint256(r.startedAt) + (secondsNeeded == 0 ? 0 : secondsNeeded - 1);
        if (at > block.timestamp) vm.warp(at);
    }

    function _report(uint256 rentalId, uint64 sequence, uint64 availableGpuSeconds, uint128 energyMillijoules)
        internal
        view
        returns (UsageReport memory)
    {
        return UsageReport({
            rentalId: rentalId,
            sequence: sequence,
            periodEnd: uint64(block.timestamp),
            availableGpuSeconds: availableGpuSeconds,
            busyGpuSeconds: availableGpuSeconds / 2,
            energyMillijoules: energyMillijoules,
            carbonMilligrams: uint128(uint256(energyMillijoules) * 30 / 3_600_000),
            uptimeBps: 9900,
            faultFlags: 0,
            challengesPassed: 0,
            challengesFailed: 0,
            telemetryHash: keccak256(abi.encode(rentalId, sequence)),
            signerSetVersion: _signerSetVersion()
        });
    }

    function _signUsage(UsageReport memory report) internal view returns (bytes memory) {
        return ReportSigning.signQuorum(_quorumKeys(), ReportSigning.usageDigest(report, address(market)));
    }

    function _signBatch(UsageReport[] memory reports) internal view returns (bytes memory) {
        return ReportSigning.signQuorum(_quorumKeys(), ReportSigning.batchDigest(reports, address(market)));
    }

    function _signFault(FaultReport memory report) internal view returns (bytes memory) {
        return ReportSigning.signQuorum(_quorumKeys(), ReportSigning.faultDigest(report, address(market)));
    }

    function _settle(uint256 rentalId, uint64 sequence, uint64 availableGpuSeconds, uint128 energyMillijoules)
        internal
    {
        _settle(rentalId, sequence, availableGpuSeconds, energyMillijoules, 0, 0);
    }

    /// @dev Settles a report that also carries the rental's cumulative challenge counts.
    function _settle(
        uint256 rentalId,
        uint64 sequence,
        uint64 availableGpuSeconds,
        uint128 energyMillijoules,
        uint32 challengesPassed,
        uint32 challengesFailed
    ) internal {
        _warpToCover(rentalId, availableGpuSeconds, energyMillijoules);
        UsageReport memory report = _report(rentalId, sequence, availableGpuSeconds, energyMillijoules);
        report.challengesPassed = challengesPassed;
        report.challengesFailed = challengesFailed;
        bytes memory signatures = _signUsage(report);
        vm.prank(keeper);
        market.settle(report, signatures);
    }

    /// @dev Claims `rentalId`'s earnings for its provider (as the keeper: anyone may).
    function _claim(uint256 rentalId) internal {
        uint256[] memory ids = new uint256[](1);
        ids[0] = rentalId;
        vm.prank(keeper);
        market.claim(ids);
    }

    function _fault(uint256 rentalId, uint32 faultId, uint8 kind) internal view returns (FaultReport memory) {
        return FaultReport({
            rentalId: rentalId,
            faultId: faultId,
            kind: kind,
            observedAt: uint64(block.timestamp),
            evidenceHash: keccak256(abi.encode("evidence", rentalId, faultId)),
            signerSetVersion: _signerSetVersion()
        });
    }

    /// @dev cost(available, energy) of docs/protocol.md, written independently of the contract.
    function _specCost(uint256 available, uint256 energyMillijoules, uint256 pricePerGpuHour, uint256 pricePerKwh)
        internal
        pure
        returns (uint256)
    {
        return (available * pricePerGpuHour) / 3600 + (energyMillijoules * pricePerKwh) / 3_600_000_000;
    }

    /// @dev The provider's share of a cumulative payment: paid - floor(paid * feeBps / 10000).
    function _providerShare(uint256 paid, uint256 feeBps) internal pure returns (uint256) {
        return paid - (paid * feeBps) / 10_000;
    }

    function _rental(uint256 rentalId) internal view returns (Rental memory) {
        return market.getRental(rentalId);
    }

    /// @dev Warps past the rental's settlement grace and finalizes it (as `keeper`: anyone may).
    function _finalizeAfterGrace(uint256 rentalId) internal {
        uint256 until = uint256(market.getRental(rentalId).endedAt) + market.rentalTerms(rentalId).settlementGrace;
        if (block.timestamp < until) vm.warp(until);
        vm.prank(keeper);
        market.finalizeRental(rentalId);
    }
}
