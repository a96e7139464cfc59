"""The deployment file: where gpurent's contracts live on each chain, and deploying them.

Every ``gpurent`` subcommand that talks to a chain reads the addresses from one JSON file, keyed
by chain id, so the same file can hold a local anvil deployment, Sepolia and Base Sepolia side
by side::

    {"deployments": {"11155111": {"chain_id": 11155111, "market": "0x...", ...}}}

The file is ``$GPURENT_DEPLOYMENTS`` if set, else ``$GPURENT_HOME/deployments.json`` (default
home ``~/.gpurent``). ``gpurent deploy`` and ``brownie run scripts/deploy.py`` both write it
through :func:`save_deployment`.

:func:`deploy_market` is the deployment itself without Brownie: the market (``GpuRentMarket``),
optionally a ``TestStablecoin`` as payment and stake token, the token allowlists and the oracle
signer set, each step a checked transaction of :mod:`oracle.chain`.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from oracle.errors import ConfigError, GpurentError

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
    operator_fee_share_bps: int = 0  # 0: the registry is not linked to the market
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


# -- deploying without Brownie ------------------------------------------------------------------

_LINK_PLACEHOLDER = re.compile(r"__\$([0-9a-f]{34})\$__")


def _libraries_by_placeholder(name: str) -> dict[str, Any]:
    """Placeholder -> library artifact, from the exported ``linkReferences`` (no compiler)."""
    from eth_utils import keccak

    from oracle.chain.artifacts import ABI_DIR, get_artifact

    path = ABI_DIR / f"{name}.json"
    try:
        refs = json.loads(path.read_text()).get("linkReferences") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    out = {}
    for source, libraries in refs.items():
        for library in libraries:
            out[keccak(text=f"{source}:{library}").hex()[:34]] = get_artifact(library)
    return out


def _linked(sender: Any, artifact: Any, txs: dict[str, str], progress: "Progress",
            deployed: dict[str, str] | None = None) -> str:
    """``artifact``'s creation code with every external library it links deployed and filled in.

    solc marks a library call site with ``__$<34 hex of keccak256("<source>:<name>")>$__``.
    """
    from eth_utils import keccak

    from oracle.chain.artifacts import compile_contracts
    from oracle.chain.contract import deploy

    code = artifact.bytecode
    wanted = set(_LINK_PLACEHOLDER.findall(code))
    if not wanted:
        return code
    deployed = {} if deployed is None else deployed
    by_hash = _libraries_by_placeholder(artifact.name)
    if not wanted <= set(by_hash):
        by_hash = {keccak(text=f"{a.source}:{a.name}").hex()[:34]: a for a in compile_contracts().values()}
    for placeholder in sorted(wanted):
        library = by_hash.get(placeholder)
        if library is None:
            raise ConfigError(f"{artifact.name} links an unknown library (placeholder {placeholder})")
        if library.name not in deployed:
            library_code = _linked(sender, library, txs, progress, deployed)
            progress(f"deploying library {library.name}")
            address, result = deploy(sender, library.abi, library_code)
            deployed[library.name] = address
            txs[f"library {library.name}"] = result.tx_hash
        code = code.replace(f"__${placeholder}$__", deployed[library.name][2:].lower())
    return code


Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


def deploy_market(
    sender: Any,
    *,
    params: MarketParamsConfig | None = None,
    payment_token: str | None = None,
    min_stake_per_gpu: int = 100 * 10**6,
    signers: Sequence[str] = (),
    threshold: int = 0,
    mint_test_tokens_to: Sequence[str] = (),
    mint_amount: int = 1_000_000 * 10**6,
    min_operator_bond: int = DEFAULT_MIN_OPERATOR_BOND,
    rebate_per_report: int = DEFAULT_REBATE_PER_REPORT,
    operator_fee_share_bps: int | None = None,
    progress: Progress = _noop,
    timelock_delay_s: int | None = None,
    proposer: str | None = None,
) -> Deployment:
    """Deploy the market (and a ``TestStablecoin`` unless ``payment_token`` is given).

    ``sender`` is an :class:`oracle.chain.tx.TransactionSender`; its account deploys and sets
    up the market (token allowlists, every GPU model of :mod:`oracle.gpu_models`, the oracle
    signer set with ``threshold``, sorted ascending as the contract wants), and is the treasury
    unless ``params`` say otherwise. Then, unless ``timelock_delay_s`` is None, a
    ``MarketTimelock`` with ``proposer`` (default: the deployer; a Safe multisig in production)
    and ``timelock_delay_s`` receives the market's admin and governance roles and the deployer
    renounces both: it keeps no role.
    """
    from web3 import Web3

    from oracle.chain.artifacts import get_artifact
    from oracle.chain.contract import BoundContract, deploy

    if signers and not 1 <= threshold <= len(signers):
        raise ConfigError(f"threshold {threshold} must be between 1 and the {len(signers)} signers")
    chain_id = sender.chain_id
    params = params or MarketParamsConfig(treasury=sender.address)
    txs: dict[str, str] = {}

    progress("compiling contracts (cached after the first run)")
    market_art = get_artifact("GpuRentMarket")
    token_art = get_artifact("TestStablecoin")

    test_stablecoin = payment_token is None
    if test_stablecoin:
        progress("deploying TestStablecoin (tUSD, 6 decimals)")
        payment_token, result = deploy(sender, token_art.abi, token_art.bytecode)
        txs["stablecoin"] = result.tx_hash
    assert payment_token is not None
    payment_token = Web3.to_checksum_address(payment_token)

    market_code = _linked(sender, market_art, txs, progress)
    progress("deploying GpuRentMarket")
    market_address, result = deploy(sender, market_art.abi, market_code, sender.address, params.as_tuple())
    txs["market"] = result.tx_hash
    block_number = result.block_number
    market = BoundContract(sender, market_address, market_art.abi, extra_error_abis=[token_art.abi])

    progress("allowing the payment and stake token")
    txs["allow payment token"] = market.transact("setPaymentToken", payment_token, True).tx_hash
    txs["allow stake token"] = market.transact("setStakeToken", payment_token, min_stake_per_gpu).tx_hash

    signer_set: dict[str, Any] = {"version": 0, "threshold": 0, "signers": []}
    if signers:
        ordered = sorted({Web3.to_checksum_address(s) for s in signers}, key=lambda a: int(a, 16))
        if len(ordered) != len(signers):
            raise ConfigError("a signer is listed twice")
        progress(f"installing the oracle signer set ({threshold} of {len(ordered)})")
        txs["signer set"] = market.transact("setSignerSet", ordered, threshold).tx_hash
        version, thr, current = market.call("signerSet")
        signer_set = {"version": int(version), "threshold": int(thr), "signers": list(current)}

    from oracle.gpu_models import GPU_MODELS

    progress(f"registering the {len(GPU_MODELS)} GPU models of oracle/gpu_models.py")
    for model in GPU_MODELS:
        txs[f"gpu model {model.name}"] = market.transact(
            "setGpuModel", model.name.encode().ljust(32, b"\0"), model.power_limit_w, model.memory_mib).tx_hash

    registry_address = deploy_operator_registry(
        sender, market_address, treasury=params.treasury, bond_token=payment_token, min_bond=min_operator_bond,
        rebate_token=payment_token, rebate_per_report=rebate_per_report, txs=txs, progress=progress,
    )
    if operator_fee_share_bps is not None:
        # From here on setSignerSet requires every signer bonded in the registry (the signer set
        # installed above is the deployment's initial one); the operators' fee share is credited
        # to the registry at finalization.
        progress(f"linking the OperatorRegistry to the market ({operator_fee_share_bps} bps of each fee)")
        txs["link operator registry"] = market.transact(
            "setOperatorRegistry", registry_address, operator_fee_share_bps).tx_hash

    governance, timelock_address = sender.address, ""
    proposer = Web3.to_checksum_address(proposer) if proposer else sender.address
    if timelock_delay_s is not None:
        timelock_art = get_artifact("MarketTimelock")
        progress(f"deploying the governance timelock (delay {timelock_delay_s} s, proposer {proposer})")
        # Executors: address(0) = anyone may execute a scheduled call once its delay has passed.
        timelock_address, result = deploy(sender, timelock_art.abi, timelock_art.bytecode, timelock_delay_s,
                                          [proposer], ["0x" + "00" * 20])
        txs["timelock"] = result.tx_hash
        admin_role, gov_role = bytes(32), bytes(market.call("GOVERNANCE_ROLE"))
        progress("handing the market's roles to the timelock; the deployer renounces its own")
        for label, role in (("governance", gov_role), ("admin", admin_role)):
            txs[f"grant {label} role to timelock"] = market.transact("grantRole", role, timelock_address).tx_hash
        for label, role in (("governance", gov_role), ("admin", admin_role)):
            txs[f"renounce {label} role"] = market.transact("renounceRole", role, sender.address).tx_hash
        governance = timelock_address
        # With a timelock, the deployer keeps no registry role either.
        hand_over_roles(BoundContract(sender, registry_address, get_artifact("OperatorRegistry").abi),
                        timelock_address, txs, "operator registry")

    token = BoundContract(sender, payment_token, token_art.abi)
    symbol, decimals = "", 18
    try:
        symbol, decimals = str(token.call("symbol")), int(token.call("decimals"))
    except GpurentError:
        pass  # a token without the optional metadata
    if test_stablecoin and mint_test_tokens_to:
        progress(f"minting test tokens to {len(mint_test_tokens_to)} dev accounts")
        for account in mint_test_tokens_to:
            token.transact("mint", Web3.to_checksum_address(account), mint_amount)

    return Deployment(
        chain_id=chain_id,
        market=market_address,
        payment_token=payment_token,
        stake_token=payment_token,
        deployer=sender.address,
        governance=governance,
        block_number=block_number,
        network=NETWORK_NAMES.get(chain_id, f"chain-{chain_id}"),
        payment_token_symbol=symbol,
        payment_token_decimals=decimals,
        test_stablecoin=test_stablecoin,
        min_stake_per_gpu=min_stake_per_gpu,
        operator_registry=registry_address,
        min_operator_bond=min_operator_bond,
        operator_fee_share_bps=operator_fee_share_bps or 0,
        signer_set=signer_set,
        params=asdict(params),
        transactions=txs,
        timelock=timelock_address,
        proposer=proposer if timelock_address else "",
        timelock_delay_s=timelock_delay_s or 0,
        gpu_models=[m.name for m in GPU_MODELS],
        tool="gpurent deploy",
        deployed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def deploy_operator_registry(
    sender: Any,
    market_address: str,
    *,
    treasury: str,
    bond_token: str,
    min_bond: int = DEFAULT_MIN_OPERATOR_BOND,
    rebate_token: str | None = None,
    rebate_per_report: int = DEFAULT_REBATE_PER_REPORT,
    admin: str | None = None,
    txs: dict[str, str] | None = None,
    progress: Progress = _noop,
) -> str:
    """Deploy the ``OperatorRegistry`` of ``market_address`` and allow ``bond_token`` for bonds.

    ``admin`` (default: the sender) receives the registry's admin and governance roles; the
    other parameters are docs/economics.md's defaults (half the bond slashed per proven
    equivocation, a fifth of it to the prover, 14 days unbonding). Returns the address.
    """
    from oracle.chain.artifacts import get_artifact
    from oracle.chain.contract import BoundContract, deploy
    from oracle.chain.operators import operator_params_tuple

    txs = {} if txs is None else txs
    artifact = get_artifact("OperatorRegistry")
    params = operator_params_tuple(treasury, rebate_token=rebate_token,
                                   rebate_per_report=rebate_per_report if rebate_token else 0)
    progress("deploying OperatorRegistry")
    address, result = deploy(sender, artifact.abi, artifact.bytecode, market_address, sender.address, params)
    txs["operator registry"] = result.tx_hash
    registry = BoundContract(sender, address, artifact.abi)
    txs["allow bond token"] = registry.transact("setBondToken", bond_token, min_bond).tx_hash
    if admin is not None and admin.lower() != sender.address.lower():
        hand_over_roles(registry, admin, txs, "operator registry")
    return address


def hand_over_roles(contract: Any, admin: str, txs: dict[str, str], label: str) -> None:
    """Grant ``contract``'s GOVERNANCE_ROLE and DEFAULT_ADMIN_ROLE to ``admin``, then the sender
    renounces both (it keeps no role)."""
    roles = [("governance", bytes(contract.call("GOVERNANCE_ROLE"))), ("admin", bytes(32))]
    for name, role in roles:
        txs[f"grant {label} {name} role"] = contract.transact("grantRole", role, admin).tx_hash
    for name, role in roles:
        txs[f"renounce {label} {name} role"] = contract.transact("renounceRole", role, contract.sender.address).tx_hash
