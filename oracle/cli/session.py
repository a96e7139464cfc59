"""The chain session of one command: an :mod:`oracle.actions` context (a read view, or with a
wallet a signing context whose transactions go through the journal), plus amounts shown and
parsed in a token's own units. Chain work itself is in :mod:`oracle.actions`, never here."""

from __future__ import annotations

from typing import Any

from oracle.actions import views
from oracle.actions.context import ActionContext, MarketView
from oracle.actions.tokens import TokenMeta
from oracle.cli.options import ChainOptions, WalletSpec, format_amount, parse_amount, text_bytes32
from oracle.errors import ConfigError


class Session:
    """A connection to one chain with gpurent's deployment on it, and (optionally) a signer.

    ``ctx`` is what the actions take: an :class:`~oracle.actions.context.ActionContext` when a
    wallet was given, else a read-only :class:`~oracle.actions.context.MarketView`.
    """

    def __init__(self, opts: ChainOptions, wallet: WalletSpec | None = None, *, need_deployment: bool = True,
                 rpc_retries: int = 1) -> None:
        from eth_account import Account

        from oracle.chain.tx import TransactionSender
        from oracle.deployment import load_deployment

        self.opts = opts
        base = MarketView.connect(opts.rpc, need_deployment=False, rpc_retries=rpc_retries)
        key = wallet.private_key(is_dev_chain=base.is_anvil) if wallet is not None and wallet.given else None
        if wallet is not None and key is None:
            wallet.private_key(is_dev_chain=base.is_anvil)  # raises the "pass --keystore" message
        deployment = load_deployment(base.chain_id, opts.deployments) if need_deployment else None
        account = Account.from_key(key) if key is not None else Account.create()
        sender = TransactionSender(base.w3, account, policy=base.sender.policy)
        sender._chain_id = base.chain_id
        self.can_sign = key is not None
        self.ctx: MarketView = (ActionContext if self.can_sign else MarketView)(sender, deployment, rpc_url=opts.rpc)
        self.ctx._client_version = base._client_version

    # what the commands read
    @property
    def w3(self) -> Any:
        return self.ctx.w3

    @property
    def sender(self) -> Any:
        return self.ctx.sender

    @property
    def address(self) -> str:
        return self.ctx.sender.address

    @property
    def chain_id(self) -> int:
        return self.ctx.chain_id

    @property
    def deployment(self) -> Any:
        return self.ctx.deployment

    @property
    def market(self) -> Any:
        return self.ctx.market

    @property
    def client(self) -> Any:
        return self.ctx.client

    @property
    def is_anvil(self) -> bool:
        return self.ctx.is_anvil

    def address_or_own(self, given: str | None, what: str, flag: str = "ADDRESS") -> str:
        """``given``, else this session's wallet address (a usage error when there is no wallet)."""
        if given is not None:
            return given
        if not self.can_sign:
            import click

            raise click.UsageError(f"give {flag}, or --keystore FILE / --dev-account N for your own {what}")
        return self.address

    def require_signer(self) -> ActionContext:
        if not self.can_sign or not isinstance(self.ctx, ActionContext):
            raise ConfigError("this command sends a transaction: pass --keystore FILE or --dev-account N")
        return self.ctx

    # amounts: in ``token`` (default: the deployment's payment token), as the chain reports it
    def token(self, token: TokenMeta | str | None = None) -> TokenMeta:
        from oracle.cli.errors import use_token_units

        meta = token if isinstance(token, TokenMeta) else (self.ctx.token(token) if token else self.ctx.payment_token)
        use_token_units(meta.decimals, meta.symbol)  # errors name amounts in the token the command uses
        return meta

    def fmt(self, units: int, token: TokenMeta | str | None = None) -> str:
        meta = self.token(token)
        return format_amount(units, meta.decimals, meta.symbol)

    def shown(self, out: dict[str, Any], token: TokenMeta | str | None, amounts: tuple[str, ...] = (),
              times: tuple[str, ...] = ()) -> dict[str, Any]:
        """``out`` for ``--json``: raw integers kept, ``<field>_display`` beside each amount (in
        ``token``) and each unix time (SPEC-R4 §3)."""
        import time

        from oracle.units import format_time, with_display

        meta = self.token(token)
        now = int(time.time())
        formats = {key: (lambda v, m=meta: format_amount(int(v), m.decimals, m.symbol)) for key in amounts}
        formats.update({key: (lambda v: format_time(int(v), now)) for key in times})
        return with_display(out, formats)

    def parse(self, text: str, what: str = "amount", token: TokenMeta | str | None = None, *,
              max_units: int | None = None) -> int:
        return parse_amount(text, self.token(token).decimals, what, max_units=max_units)


def signing_session(chain: ChainOptions, wallet: WalletSpec, **kwargs: Any) -> Session:
    """A session for a command that sends a transaction: refuses to go on without a signing key."""
    session = Session(chain, wallet, **kwargs)
    session.require_signer()
    return session


def tx_out(done: Any) -> dict[str, Any]:
    return done.tx_out()


def rental_view(session: Session, rental_id: int) -> dict[str, Any]:
    """A rental as stored on chain, snake_case, with enum names (``oracle.actions.views.rental``)."""
    return views.rental(session.ctx, rental_id).as_dict()


def offer_view(session: Session, offer_id: int) -> dict[str, Any]:
    return views.offer(session.ctx, offer_id).as_dict()


def reputation_view(session: Session, provider: str) -> dict[str, Any]:
    return views.reputation(session.ctx, provider).as_dict()


def gpu_model_arg(session: Session, text: str) -> bytes | str:
    """The GPU model as the deployed ABI wants it (``bytes32`` zero-padded, or ``string``)."""
    for item in session.market.abi:
        if item.get("type") == "function" and item.get("name") == "createOffer":
            for component in item["inputs"][0].get("components", []):
                if component.get("name") == "gpuModel" and component.get("type") == "string":
                    return text
    return text_bytes32(text, "--gpu-model")
