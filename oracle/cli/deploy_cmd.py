"""``gpurent deploy``: deploy the market (and a test stablecoin) to any RPC, no Brownie needed."""

from __future__ import annotations


import click

from oracle.cli.common import (
    ADDRESS,
    ChainOptions,
    Session,
    WalletSpec,
    chain_options,
    console,
    format_amount,
    parse_amount,
    print_json,
    progress_steps,
    wallet_options,
)
from oracle.cli.common import GuardedCommand
from oracle.cli.params import AMOUNT, UINT96_MAX, FiniteFloat
from oracle.actions.deploy import deploy_market
from oracle.actions.tokens import token_meta
from oracle.deployment import (
    DAY_S,
    DEFAULT_OPERATOR_FEE_SHARE_BPS,
    EXPLORERS,
    MarketParamsConfig,
    default_deployments_path,
    save_deployment,
    verification_lines,
)


@click.command(cls=GuardedCommand)
@chain_options
@wallet_options
@click.option("--signer", "signers", multiple=True, type=ADDRESS, metavar="ADDRESS",
              help="oracle node signer address (repeat for each node)")
@click.option("--threshold", type=click.IntRange(1, 31), default=None,
              help="signatures needed (default: a majority of --signer)")
@click.option("--payment-token", type=ADDRESS, default=None,
              help="an existing ERC-20 for payment and stake (default: deploy a TestStablecoin)")
@click.option("--min-stake-per-gpu", type=AMOUNT, default="100", show_default=True,
              help="stake per listed GPU, in token units")
@click.option("--fee-bps", type=click.IntRange(0, 1000), default=100, show_default=True, help="protocol fee")
@click.option("--treasury", type=ADDRESS, default=None, help="fee recipient (default: the deployer)")
@click.option("--unbonding-days", type=FiniteFloat(0, 400, min_open=True), default=32.0, show_default=True,
              help="must exceed --max-rental-days plus the settlement grace (the contract checks)")
@click.option("--max-rental-days", type=FiniteFloat(1 / 24, 180), default=30.0, show_default=True,
              help="longest rental any offer can have")
@click.option("--start-timeout", type=click.IntRange(60, 7 * 86_400), default=3600, show_default=True, help="seconds")
@click.option("--silence-timeout", type=click.IntRange(60, 7 * 86_400), default=3600, show_default=True, help="seconds")
@click.option("--settlement-grace", type=click.IntRange(60, 7 * 86_400), default=86400, show_default=True, help="seconds")
@click.option("--reputation-prior", type=AMOUNT, default="100", show_default=True,
              help="the reputation score's prior, in token units of fees (docs/economics.md)")
@click.option("--proposer", type=ADDRESS, default=None, envvar="GPURENT_PROPOSER", show_envvar=True,
              help="who may schedule governance changes through the timelock: a Safe multisig in "
                   "production (default: the deployer, on a local chain only)")
@click.option("--operator-fee-share-bps", type=click.IntRange(0, 10_000), default=DEFAULT_OPERATOR_FEE_SHARE_BPS,
              show_default=True,
              help="the OperatorRegistry is linked: this share of each protocol fee goes to the oracle operators "
                   "and every later signer must be bonded (docs/economics.md); 0 leaves it unlinked")
@click.option("--timelock-delay", type=click.IntRange(0, 30 * 86_400), default=None,
              help="seconds every governance change waits, in public (default: 60 on a local chain, "
                   "2 days elsewhere)")
@click.option("--mint-dev/--no-mint-dev", default=None,
              help="mint 1,000,000 test tokens to the 10 anvil dev accounts (default: on a local anvil)")
def deploy(chain: ChainOptions, wallet: WalletSpec, signers: tuple[str, ...], threshold: int | None,
           payment_token: str | None, min_stake_per_gpu: str, fee_bps: int, treasury: str | None,
           unbonding_days: float, max_rental_days: float, start_timeout: int, silence_timeout: int,
           settlement_grace: int, reputation_prior: str, proposer: str | None, operator_fee_share_bps: int, timelock_delay: int | None,
           mint_dev: bool | None) -> None:
    """Deploy GpuRentMarket to --rpc from a keystore account (or --dev-account on anvil) and
    record the addresses for this chain id in the deployment file. The market's roles go to a
    timelock (proposer --proposer, delay --timelock-delay); the deploying key keeps none."""
    session = Session(chain, wallet, need_deployment=False, rpc_retries=3)
    session.require_signer()
    if proposer is None and not session.is_anvil:
        raise click.UsageError("on a public chain the timelock's proposer must be given: --proposer ADDRESS "
                               "(or GPURENT_PROPOSER), e.g. a Safe multisig")
    if timelock_delay is None:
        timelock_delay = 60 if session.is_anvil else 2 * DAY_S
    decimals = 6
    if payment_token is not None:  # any metadata shape (bytes32 symbol, none at all), read before sending
        decimals = token_meta(session.w3, payment_token).decimals
    min_stake = parse_amount(min_stake_per_gpu, decimals, "--min-stake-per-gpu", max_units=UINT96_MAX)
    prior = parse_amount(reputation_prior, decimals, "--reputation-prior", max_units=UINT96_MAX)
    if min_stake == 0 or prior == 0:
        raise click.UsageError("--min-stake-per-gpu and --reputation-prior must be at least the token's smallest unit")
    if unbonding_days * DAY_S <= max_rental_days * DAY_S + settlement_grace:
        raise click.UsageError(f"--unbonding-days {unbonding_days:g} must exceed --max-rental-days "
                               f"{max_rental_days:g} plus the settlement grace ({settlement_grace} s): a provider "
                               "stays slashable for as long as it can be reported")
    if signers and threshold is None:
        threshold = len(signers) // 2 + 1
    params = MarketParamsConfig(
        treasury=treasury or session.address, protocol_fee_bps=fee_bps,
        start_timeout_s=start_timeout, silence_timeout_s=silence_timeout, settlement_grace_s=settlement_grace,
        unbonding_delay_s=max(1, int(unbonding_days * DAY_S)), max_rental_duration_s=int(max_rental_days * DAY_S),
        reputation_prior=prior,
    )
    mint = session.is_anvil if mint_dev is None else mint_dev
    from oracle.localchain import dev_accounts

    path = chain.deployments or default_deployments_path()
    ctx = session.require_signer()
    with progress_steps(not chain.as_json) as step:
        step(f"deploying from {session.address} to chain {session.chain_id} at {chain.rpc}")
        # Journaled: rerun with the same options after an interrupt, it resumes where it stopped
        # (contracts already mined are not deployed again); the file is written before it counts as done.
        deployment = deploy_market(
            session.sender, params=params, payment_token=payment_token, min_stake_per_gpu=min_stake,
            signers=signers, threshold=threshold or 0,
            mint_test_tokens_to=dev_accounts() if (mint and payment_token is None) else (),
            progress=step, timelock_delay_s=timelock_delay, proposer=proposer,
            operator_fee_share_bps=operator_fee_share_bps, journal=ctx.journal,
            on_deployed=lambda d: save_deployment(d, path),
        )
    if chain.as_json:
        print_json({**deployment.to_json(), "deployments_file": str(path)})
        return
    con = console()
    con.print(f"deployed to chain {deployment.chain_id}; written to {path}")
    con.print(f"  market         {deployment.market}")
    con.print(f"  payment token  {deployment.payment_token} ({deployment.payment_token_symbol or '?'}, "
              f"{deployment.payment_token_decimals} decimals)")
    con.print(f"  min stake/GPU  {format_amount(min_stake, decimals, deployment.payment_token_symbol)}")
    ss = deployment.signer_set
    con.print(f"  signer set     v{ss.get('version')}: {ss.get('threshold')} of {len(ss.get('signers', []))}")
    con.print(f"  governance     timelock {deployment.timelock} (delay {deployment.timelock_delay_s} s, "
              f"proposer {deployment.proposer}); the deployer holds no role")
    if deployment.chain_id in EXPLORERS or not session.is_anvil:
        for line in verification_lines(deployment):
            con.print(line)
