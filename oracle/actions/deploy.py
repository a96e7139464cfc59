"""Deploying gpurent without Brownie, resumably (``gpurent deploy``).

The market (``GpuRentMarket`` and the libraries it links), optionally a ``TestStablecoin`` as
payment and stake token, the token allowlists, the oracle signer set, the GPU model table, the
``OperatorRegistry`` and the governance timelock, each a step of one journal intent. Run again
with the same arguments after an interrupt, it sends only the steps not yet mined: contracts
already deployed are found in the journal at their addresses, not deployed again.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from typing import Any, Callable, Sequence

from eth_utils import keccak
from web3 import Web3

from oracle.actions.executor import Run, run_intent
from oracle.actions.journal import Journal
from oracle.actions.requests import TxRequest, intent_key
from oracle.actions.tokens import token_meta
from oracle.chain.artifacts import ABI_DIR, compile_contracts, get_artifact
from oracle.chain.contract import BoundContract
from oracle.chain.errors import ErrorDecoder
from oracle.chain.tx import TxResult
from oracle.deployment import (
    DEFAULT_MIN_OPERATOR_BOND,
    DEFAULT_OPERATOR_FEE_SHARE_BPS,
    DEFAULT_REBATE_PER_REPORT,
    NETWORK_NAMES,
    Deployment,
    MarketParamsConfig,
)
from oracle.errors import ChainError, ConfigError

Progress = Callable[[str], None]
_LINK_PLACEHOLDER = re.compile(r"__\$([0-9a-f]{34})\$__")


def _noop(_: str) -> None:
    pass


class _Deployer:
    """Steps of one deployment: each transaction sent once, its result kept by label."""

    def __init__(self, sender: Any, run: Run, txs: dict[str, str], progress: Progress) -> None:
        self.sender = sender
        self.run = run
        self.txs = txs
        self.progress = progress

    def send(self, label: str, request: TxRequest, *, record: bool = True) -> TxResult:
        request = TxRequest(request.to, request.data, request.value, label, request.function, label)
        if label in self.run.done:
            self.progress(f"{label}: mined earlier (found in the journal, not sent again)")
        result = self.run.step(request)
        if record:
            self.txs[label] = result.tx_hash
        return result

    def create(self, label: str, abi: Sequence[dict[str, Any]], bytecode: str, *args: Any) -> str:
        factory = self.sender.w3.eth.contract(abi=list(abi), bytecode=bytecode)
        self.sender.decoder.errors.update(ErrorDecoder.from_abis(list(abi)).errors)
        result = self.send(label, TxRequest(None, factory.constructor(*args).data_in_transaction, 0, label, "constructor"))
        address = result.receipt.get("contractAddress")
        if not address:
            raise ChainError(f"deployment {result.tx_hash} created no contract")
        return Web3.to_checksum_address(address)

    def call(self, label: str, contract: BoundContract, function: str, *args: Any, record: bool = True) -> str:
        tx = contract.build(function, *args)
        data = tx["data"] if isinstance(tx["data"], str) else "0x" + bytes(tx["data"]).hex()
        return self.send(label, TxRequest(contract.address, data, 0, label, function), record=record).tx_hash


def _libraries_by_placeholder(name: str) -> dict[str, Any]:
    """Placeholder -> library artifact, from the exported ``linkReferences`` (no compiler)."""
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


def _linked(d: _Deployer, artifact: Any, deployed: dict[str, str]) -> str:
    """``artifact``'s creation code with every external library it links deployed and filled in.

    solc marks a library call site with ``__$<34 hex of keccak256("<source>:<name>")>$__``.
    """
    code = artifact.bytecode
    wanted = set(_LINK_PLACEHOLDER.findall(code))
    if not wanted:
        return code
    by_hash = _libraries_by_placeholder(artifact.name)
    if not wanted <= set(by_hash):
        by_hash = {keccak(text=f"{a.source}:{a.name}").hex()[:34]: a for a in compile_contracts().values()}
    for placeholder in sorted(wanted):
        library = by_hash.get(placeholder)
        if library is None:
            raise ConfigError(f"{artifact.name} links an unknown library (placeholder {placeholder})")
        if library.name not in deployed:
            library_code = _linked(d, library, deployed)
            d.progress(f"deploying library {library.name}")
            deployed[library.name] = d.create(f"library {library.name}", library.abi, library_code)
        code = code.replace(f"__${placeholder}$__", deployed[library.name][2:].lower())
    return code


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
    operator_fee_share_bps: int = DEFAULT_OPERATOR_FEE_SHARE_BPS,
    progress: Progress = _noop,
    timelock_delay_s: int | None = None,
    proposer: str | None = None,
    journal: Journal | None = None,
    on_deployed: Callable[[Deployment], Any] | None = None,
) -> Deployment:
    """Deploy the market (and a ``TestStablecoin`` unless ``payment_token`` is given).

    ``sender`` is an :class:`oracle.chain.tx.TransactionSender`; its account deploys and sets
    up the market (token allowlists, every GPU model of :mod:`oracle.gpu_models`, the oracle
    signer set with ``threshold``, sorted ascending as the contract wants), and is the treasury
    unless ``params`` say otherwise. Then, unless ``timelock_delay_s`` is None, a
    ``MarketTimelock`` with ``proposer`` (default: the deployer; a Safe multisig in production)
    and ``timelock_delay_s`` receives the market's admin and governance roles and the deployer
    renounces both: it keeps no role.

    With a ``journal`` every transaction is recorded before it is sent, and a call with the same
    arguments after an interrupt resumes: steps already mined are not sent again.
    ``on_deployed`` (e.g. writing the deployment file) runs before the journal calls it done.
    """
    from oracle.gpu_models import GPU_MODELS

    if signers and not 1 <= threshold <= len(signers):
        raise ConfigError(f"threshold {threshold} must be between 1 and the {len(signers)} signers")
    ordered = sorted({Web3.to_checksum_address(s) for s in signers}, key=lambda a: int(a, 16))
    if len(ordered) != len(signers):
        raise ConfigError("a signer is listed twice")
    chain_id = sender.chain_id
    params = params or MarketParamsConfig(treasury=sender.address)
    proposer = Web3.to_checksum_address(proposer) if proposer else sender.address
    # The token's metadata first (any shape: bytes32 or no symbol), before anything is sent.
    meta = token_meta(sender.w3, payment_token) if payment_token is not None else None
    key = intent_key("deploy", sender.address, chain_id, payment_token, min_stake_per_gpu, ordered, threshold,
                     list(params.as_tuple()), list(mint_test_tokens_to), mint_amount, min_operator_bond,
                     rebate_per_report, operator_fee_share_bps, timelock_delay_s, proposer)
    txs: dict[str, str] = {}

    progress("compiling contracts (cached after the first run)")
    market_art = get_artifact("GpuRentMarket")
    token_art = get_artifact("TestStablecoin")

    with run_intent(sender, journal, key, action="deploy", summary=f"deploy to chain {chain_id}") as run:
        d = _Deployer(sender, run, txs, progress)
        test_stablecoin = payment_token is None
        if test_stablecoin:
            progress("deploying TestStablecoin (tUSD, 6 decimals)")
            payment_token = d.create("stablecoin", token_art.abi, token_art.bytecode)
        assert payment_token is not None
        payment_token = Web3.to_checksum_address(payment_token)

        market_code = _linked(d, market_art, {})
        progress("deploying GpuRentMarket")
        market_address = d.create("market", market_art.abi, market_code, sender.address, params.as_tuple())
        block_number = run.done["market"].block_number
        market = BoundContract(sender, market_address, market_art.abi, extra_error_abis=[token_art.abi])

        progress("allowing the payment and stake token")
        d.call("allow payment token", market, "setPaymentToken", payment_token, True)
        d.call("allow stake token", market, "setStakeToken", payment_token, min_stake_per_gpu)

        signer_set: dict[str, Any] = {"version": 0, "threshold": 0, "signers": []}
        if ordered:
            progress(f"installing the oracle signer set ({threshold} of {len(ordered)})")
            d.call("signer set", market, "setSignerSet", ordered, threshold)
            version, thr, current = market.call("signerSet")
            signer_set = {"version": int(version), "threshold": int(thr), "signers": list(current)}

        progress(f"registering the {len(GPU_MODELS)} GPU models of oracle/gpu_models.py")
        for model in GPU_MODELS:
            d.call(f"gpu model {model.name}", market, "setGpuModel", model.name.encode().ljust(32, b"\0"),
                   model.power_limit_w, model.memory_mib)

        registry_address = _deploy_registry(d, market_address, treasury=params.treasury, bond_token=payment_token,
                                            min_bond=min_operator_bond, rebate_token=payment_token,
                                            rebate_per_report=rebate_per_report)
        if operator_fee_share_bps:
            # Linked by default (0 opts out). From here on setSignerSet requires every signer bonded
            # in the registry (the signer set installed above is the deployment's initial one); the
            # operators' fee share is credited to the registry at finalization.
            progress(f"linking the OperatorRegistry to the market ({operator_fee_share_bps} bps of each fee)")
            d.call("link operator registry", market, "setOperatorRegistry", registry_address, operator_fee_share_bps)

        governance, timelock_address = sender.address, ""
        if timelock_delay_s is not None:
            timelock_art = get_artifact("MarketTimelock")
            progress(f"deploying the governance timelock (delay {timelock_delay_s} s, proposer {proposer})")
            # Executors: address(0) = anyone may execute a scheduled call once its delay has passed.
            timelock_address = d.create("timelock", timelock_art.abi, timelock_art.bytecode, timelock_delay_s,
                                        [proposer], ["0x" + "00" * 20])
            progress("handing the market's roles to the timelock; the deployer renounces its own")
            _hand_over(d, market, timelock_address, "", grant_label="grant {name} role to timelock",
                       renounce_label="renounce {name} role")
            governance = timelock_address
            # With a timelock, the deployer keeps no registry role either.
            _hand_over(d, BoundContract(sender, registry_address, get_artifact("OperatorRegistry").abi),
                       timelock_address, "operator registry")

        meta = meta or token_meta(sender.w3, payment_token)
        symbol, decimals = meta.symbol, meta.decimals
        if test_stablecoin and mint_test_tokens_to:
            progress(f"minting test tokens to {len(mint_test_tokens_to)} dev accounts")
            token = BoundContract(sender, payment_token, token_art.abi)
            for account in mint_test_tokens_to:
                account = Web3.to_checksum_address(account)
                d.call(f"mint {account}", token, "mint", account, mint_amount, record=False)

        deployment = Deployment(
            chain_id=chain_id, market=market_address, payment_token=payment_token, stake_token=payment_token,
            deployer=sender.address, governance=governance, block_number=block_number,
            network=NETWORK_NAMES.get(chain_id, f"chain-{chain_id}"), payment_token_symbol=symbol,
            payment_token_decimals=decimals, test_stablecoin=test_stablecoin, min_stake_per_gpu=min_stake_per_gpu,
            operator_registry=registry_address, min_operator_bond=min_operator_bond,
            operator_fee_share_bps=operator_fee_share_bps or 0, signer_set=signer_set, params=asdict(params),
            transactions=dict(txs), timelock=timelock_address, proposer=proposer if timelock_address else "",
            timelock_delay_s=timelock_delay_s or 0, gpu_models=[m.name for m in GPU_MODELS], tool="gpurent deploy",
            deployed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if on_deployed is not None:
            on_deployed(deployment)
        return deployment


def _deploy_registry(d: _Deployer, market_address: str, *, treasury: str, bond_token: str, min_bond: int,
                     rebate_token: str | None, rebate_per_report: int, admin: str | None = None) -> str:
    from oracle.chain.operators import operator_params_tuple

    artifact = get_artifact("OperatorRegistry")
    params = operator_params_tuple(treasury, rebate_token=rebate_token,
                                   rebate_per_report=rebate_per_report if rebate_token else 0)
    d.progress("deploying OperatorRegistry")
    address = d.create("operator registry", artifact.abi, artifact.bytecode, market_address, d.sender.address, params)
    registry = BoundContract(d.sender, address, artifact.abi)
    d.call("allow bond token", registry, "setBondToken", bond_token, min_bond)
    if admin is not None and admin.lower() != d.sender.address.lower():
        _hand_over(d, registry, admin, "operator registry")
    return address


def _hand_over(d: _Deployer, contract: BoundContract, admin: str, label: str, *,
               grant_label: str = "grant {label} {name} role", renounce_label: str = "renounce {label} {name} role") -> None:
    """Grant ``contract``'s GOVERNANCE_ROLE and DEFAULT_ADMIN_ROLE to ``admin``, then the sender
    renounces both (it keeps no role)."""
    roles = [("governance", bytes(contract.call("GOVERNANCE_ROLE"))), ("admin", bytes(32))]
    for name, role in roles:
        d.call(grant_label.format(label=label, name=name), contract, "grantRole", role, admin)
    for name, role in roles:
        d.call(renounce_label.format(label=label, name=name), contract, "renounceRole", role, d.sender.address)


def deploy_operator_registry(sender: Any, market_address: str, *, treasury: str, bond_token: str,
                             min_bond: int = DEFAULT_MIN_OPERATOR_BOND, rebate_token: str | None = None,
                             rebate_per_report: int = DEFAULT_REBATE_PER_REPORT, admin: str | None = None,
                             txs: dict[str, str] | None = None, progress: Progress = _noop,
                             journal: Journal | None = None) -> str:
    """Deploy the ``OperatorRegistry`` of ``market_address`` and allow ``bond_token`` for bonds.

    ``admin`` (default: the sender) receives the registry's admin and governance roles; the
    other parameters are docs/economics.md's defaults (half the bond slashed per proven
    equivocation, a fifth of it to the prover, 14 days unbonding). Returns the address.
    """
    txs = {} if txs is None else txs
    key = intent_key("deploy_operator_registry", sender.address, market_address, treasury, bond_token, min_bond,
                     rebate_token, rebate_per_report, admin)
    with run_intent(sender, journal, key, action="deploy operator registry") as run:
        return _deploy_registry(_Deployer(sender, run, txs, progress), market_address, treasury=treasury,
                                bond_token=bond_token, min_bond=min_bond, rebate_token=rebate_token,
                                rebate_per_report=rebate_per_report, admin=admin)


def hand_over_roles(contract: BoundContract, admin: str, txs: dict[str, str], label: str,
                    journal: Journal | None = None) -> None:
    """Grant ``contract``'s GOVERNANCE_ROLE and DEFAULT_ADMIN_ROLE to ``admin``; the sender
    renounces both."""
    key = intent_key("hand_over_roles", contract.sender.address, contract.address, admin)
    with run_intent(contract.sender, journal, key, action="hand over roles") as run:
        _hand_over(_Deployer(contract.sender, run, txs, _noop), contract, admin, label)
