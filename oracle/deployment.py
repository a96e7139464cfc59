"""The deployment file: where gpurent's contracts live on each chain, and deploying them.

Every ``gpurent`` subcommand that talks to a chain reads the addresses from one JSON file, keyed
by chain id, so the same file can hold a local anvil deployment, Sepolia and Base Sepolia side
by side::

    {"deployments": {"11155111": {"chain_id": 11155111, "market": "0x...", ...}}}

The file is ``$GPURENT_DEPLOYMENTS`` if set, else ``$GPURENT_HOME/deployments.json`` (default
home ``~/.gpurent``). ``gpurent deploy`` and ``brownie run scripts/deploy.py`` both write it
through :func:`save_deployment`. The deployment itself (resumable, journaled) is
:func:`oracle.actions.deploy.deploy_market`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oracle.errors import GpurentError

DEPLOYMENTS_ENV = "GPURENT_DEPLOYMENTS"
HOME_ENV = "GPURENT_HOME"

# Public explorers of the testnets the project deploys to (chain id -> base URL).
EXPLORERS = {
    1: "https://etherscan.io",
    11155111: "https://sepolia.etherscan.io",
    84532: "https://sepolia.basescan.org",
    8453: "https://basescan.org",
}
NETWORK_NAMES = {31337: "anvil", 11155111: "sepolia", 84532: "base-sepolia", 1: "mainnet", 8453: "base"}

DAY_S = 86_400
#: Oracle operators' bond and settlement rebate defaults, in the smallest unit of a 6-decimal
#: token (docs/economics.md, "Operators"): 1,000 tokens per operator; 0.005 token per settled report.
DEFAULT_MIN_OPERATOR_BOND = 1_000 * 10**6
DEFAULT_REBATE_PER_REPORT = 5_000
#: Share of each protocol fee credited to the OperatorRegistry (the oracle operators) at
#: finalization, in basis points: half (docs/economics.md, "Operators"). Both deploy paths
#: (``gpurent deploy`` and ``brownie run scripts/deploy.py``) link the registry with it; 0 leaves
#: the registry unlinked (no fee share, no bond check on later signer sets).
DEFAULT_OPERATOR_FEE_SHARE_BPS = 5_000


class DeploymentError(GpurentError, LookupError):
    """No deployment for this chain in the deployment file, or a file that cannot be read."""


def gpurent_home() -> Path:
    """Where gpurent keeps local state (deployment file, local chain pid file, keystores)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".gpurent").expanduser()


def default_deployments_path() -> Path:
    env = os.environ.get(DEPLOYMENTS_ENV)
    return Path(env).expanduser() if env else gpurent_home() / "deployments.json"


@dataclass(frozen=True)
class MarketParamsConfig:
    """``MarketParams`` of the contract (types/DataTypes.sol), in its field order."""

    treasury: str
    protocol_fee_bps: int = 100
    renter_slash_share_bps: int = 5_000
    slash_bps: int = 1_000
    start_timeout_s: int = 3_600
    silence_timeout_s: int = 3_600
    settlement_grace_s: int = DAY_S
    # Above max_rental_duration_s + settlement_grace_s (the contract enforces it).
    unbonding_delay_s: int = 32 * DAY_S
    max_rental_duration_s: int = 30 * DAY_S
    slash_window_s: int = 3_600
    # The reputation score's prior, in payment-token units of fees (100 tokens of 6 decimals).
    reputation_prior: int = 100 * 10**6

    def as_tuple(self) -> tuple:
        return (
            self.treasury, self.protocol_fee_bps, self.renter_slash_share_bps, self.slash_bps,
            self.start_timeout_s, self.silence_timeout_s, self.settlement_grace_s,
            self.unbonding_delay_s, self.max_rental_duration_s, self.slash_window_s, self.reputation_prior,
        )


@dataclass(frozen=True)
class Deployment:
    """One chain's gpurent contracts, as written to the deployment file."""

    chain_id: int
    market: str
    payment_token: str
    stake_token: str
    deployer: str
    governance: str
    block_number: int
    network: str = ""
    payment_token_symbol: str = ""
    payment_token_decimals: int = 18
    test_stablecoin: bool = False
    min_stake_per_gpu: int = 0
    operator_registry: str = ""
    min_operator_bond: int = 0
    operator_fee_share_bps: int = 0  # 0: the registry is not linked to the market (deploys link it by default)
    signer_set: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # The TimelockController holding the market's roles (governance above is its address), the
    # account that may schedule through it, and its delay in seconds.
    timelock: str = ""
    proposer: str = ""
    timelock_delay_s: int = 0
    gpu_models: list[str] = field(default_factory=list)
    transactions: dict[str, str] = field(default_factory=dict)
    tool: str = "gpurent deploy"
    deployed_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Deployment":
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise DeploymentError(f"deployment entry is missing fields: {exc}") from None

    def explorer_url(self, address_or_tx: str) -> str | None:
        base = EXPLORERS.get(self.chain_id)
        if base is None:
            return None
        kind = "tx" if len(address_or_tx) == 66 else "address"
        return f"{base}/{kind}/{address_or_tx}"


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"deployments": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeploymentError(f"cannot read the deployment file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), dict):
        raise DeploymentError(f"{path} is not a gpurent deployment file (no 'deployments' table)")
    return data


def load_deployment(chain_id: int, path: str | os.PathLike[str] | None = None) -> Deployment:
    """The deployment for ``chain_id``; :class:`DeploymentError` saying what to run if none."""
    path = Path(path) if path is not None else default_deployments_path()
    data = _read(path)
    entry = data["deployments"].get(str(chain_id))
    if entry is None:
        known = ", ".join(sorted(data["deployments"])) or "none"
        raise DeploymentError(
            f"no gpurent deployment for chain {chain_id} in {path} (chains there: {known}); "
            "run `gpurent deploy` against this RPC first, or pass --deployments FILE"
        )
    return Deployment.from_json(entry)


def all_deployments(path: str | os.PathLike[str] | None = None) -> dict[int, Deployment]:
    path = Path(path) if path is not None else default_deployments_path()
    return {int(k): Deployment.from_json(v) for k, v in _read(path)["deployments"].items()}


def save_deployment(deployment: Deployment, path: str | os.PathLike[str] | None = None) -> Path:
    """Write (or replace) the entry of ``deployment.chain_id``; other chains are kept. Atomic."""
    path = Path(path) if path is not None else default_deployments_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _read(path)
    data["deployments"][str(deployment.chain_id)] = deployment.to_json()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def verification_lines(deployment: Deployment) -> list[str]:
    """What a deployer checks on a block explorer after a public deployment."""
    lines = []
    base = EXPLORERS.get(deployment.chain_id)
    where = base or f"chain {deployment.chain_id} (no known explorer)"
    lines.append(f"Verify on {where}:")
    for label, address in (("GpuRentMarket", deployment.market),
                           ("OperatorRegistry", deployment.operator_registry),
                           ("payment token", deployment.payment_token),
                           ("stake token", deployment.stake_token)):
        if not address:
            continue
        url = deployment.explorer_url(address)
        lines.append(f"  {label:<14} {address}" + (f"  {url}" if url else ""))
    for label, tx in deployment.transactions.items():
        url = deployment.explorer_url(tx)
        lines.append(f"  tx {label:<11} {tx}" + (f"  {url}" if url else ""))
    lines += [
        "Check there:",
        "  - the contract creation txs came from the deployer " + deployment.deployer,
        "  - GpuRentMarket: source verified with solc 0.8.30, optimizer 200 runs, evm cancun",
        "    (constructor args: admin, MarketParams)",
        f"  - events: PaymentTokenSet/StakeTokenSet for {deployment.payment_token},"
        f" SignerSetUpdated(version {deployment.signer_set.get('version', '?')},"
        f" threshold {deployment.signer_set.get('threshold', '?')})",
        f"  - DEFAULT_ADMIN_ROLE and GOVERNANCE_ROLE held by {deployment.governance}"
        + (f" (the timelock, delay {deployment.timelock_delay_s} s, proposer {deployment.proposer});"
           f" the deployer {deployment.deployer} holds no role" if deployment.timelock
           else " (move them to a multisig/timelock before real funds)"),
    ]
    return lines
