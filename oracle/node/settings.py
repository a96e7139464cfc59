"""Typed node configuration that refuses to start on unsafe values.

Sources, later ones winning: defaults, a TOML or JSON file (``GPURENT_NODE_CONFIG`` or the
``config_file`` argument), then environment variables named ``GPURENT_NODE_<FIELD>``
(for example ``GPURENT_NODE_CHAIN_ID=31337``; list and table values as JSON).

Outside ``dev_mode`` the node refuses a plaintext key, a missing keystore, and an empty or
well-known password: :func:`load_settings_or_exit` turns that into ``SystemExit`` with the
reason, no traceback. pydantic-settings is not used on purpose (its python-dotenv pin
conflicts with eth-brownie's); this is a plain pydantic model.

Chain side (optional). With ``rpc_url`` set the node follows the market's events (rentals it
meters come from ``RentalStarted``, ``confirmations`` blocks deep, from ``chain_start_block``)
and, unless ``submit_settlements = false``, aggregates signatures from itself (``self_url``) and
its ``peers`` and submits settlement and fault reports with its own key (which pays the gas,
each fee capped by ``max_fee_per_gas_cap_wei``). Without ``rpc_url`` it meters only the
``rentals`` listed here, as before, and refuses chain settings it would silently ignore.
``confirmations = 0`` is for local dev chains (chain id 31337 or 1337) and ``dev_mode`` only.
When the server's port is given outside the settings (``uvicorn --port``), set ``self_url``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from oracle.errors import ConfigError, KeystoreError
from oracle.node.settle_policy import DEFAULT_MAX_REPORTS_PER_TX, GAS_PER_BATCHED_REPORT, SettlePolicy
from oracle.protocol import MAX_BATCH_REPORTS
from oracle.redact import redact_url  # noqa: F401  (re-exported: the node's one redaction helper)

ENV_PREFIX = "GPURENT_NODE_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_ZERO_ADDRESS = "0x" + "0" * 40
_HTTP_URL = re.compile(r"^https?://[^\s/]+")

# Chain ids of local development chains (anvil/hardhat, ganache/geth --dev): the only chains,
# besides dev mode, where the node may read blocks with no confirmation on top.
LOCAL_CHAIN_IDS = frozenset({31337, 1337})
GWEI = 10**9

# Settings that only mean something with an RPC endpoint: refused without ``rpc_url``.
CHAIN_FIELDS = (
    "self_url", "chain_start_block", "confirmations", "chain_poll_interval_s", "settle_interval_s",
    "submit_stagger_s", "submit_settlements", "settle_batch", "slash_faults", "max_fee_per_gas_cap_wei",
    "settle_by_value", "settle_max_gas_bps", "settle_max_interval_s", "settle_token_units_per_eth",
    "settle_gas_per_report", "settle_max_rentals_per_round", "settle_max_reports_per_tx",
    "faults_per_rental_per_round", "operator_registry_address",
)


def _checksum(address: str) -> str:
    from oracle.telemetry.batches import to_checksum_address

    if not _ADDRESS.match(address):
        raise ValueError(f"not a 20-byte hex address: {address!r}")
    return to_checksum_address(address)


class RentalConfig(BaseModel):
    """One rental this node meters, listed statically (with ``rpc_url`` the chain follower also adds
    rentals from ``RentalStarted`` events; only those are settled by the node itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rental_id: int = Field(ge=0, lt=2**256)
    agent: str
    gpu_count: int = Field(ge=1, le=256)
    region: str = Field(default="", max_length=64)
    grid_intensity_g_per_kwh: int = Field(ge=0, le=10_000)
    start_ms: int = Field(ge=0, description="unix milliseconds the rental started")
    gpu_model: str = Field(default="NVIDIA H100 80GB HBM3", max_length=32,
                           description="the rented model (oracle/gpu_models.py): metering's power limit")
    power_limit_w: int = Field(default=0, ge=0, le=65_535, description="0: the model's power limit")
    end_ms: int | None = Field(default=None, ge=0, description="the rental's last unix millisecond, once it ended")

    @field_validator("agent")
    @classmethod
    def _agent_address(cls, value: str) -> str:
        return _checksum(value)


class NodeSettings(BaseModel):
    """Everything one attestation node needs to start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dev_mode: bool = False

    # The node key: an encrypted keystore (Web3 Secret Storage) and its password.
    keystore_path: Path | None = None
    keystore_password: SecretStr | None = None
    keystore_password_file: Path | None = None
    private_key: SecretStr | None = Field(default=None, description="plaintext hex key; dev mode only")

    # The EIP-712 domain and the signer set the node signs for.
    chain_id: int = Field(ge=1, lt=2**256)
    market_address: str
    signer_set_version: int = Field(default=1, ge=0, lt=2**32)

    db_path: Path = Path("gpurent-node.sqlite3")
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)
    peers: tuple[str, ...] = ()
    rentals: tuple[RentalConfig, ...] = ()

    # Ingest limits.
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    max_samples_per_batch: int = Field(default=4096, ge=1, le=1_000_000)
    max_clock_skew_ms: int = Field(default=10_000, ge=0, le=600_000)
    max_batch_age_ms: int = Field(default=24 * 3600 * 1000, ge=1000)
    ip_rate_per_s: float = Field(default=100.0, gt=0)
    ip_burst: int = Field(default=200, ge=1)
    agent_rate_per_s: float = Field(default=20.0, gt=0)
    agent_burst: int = Field(default=100, ge=1)
    report_rate_per_s: float = Field(default=20.0, gt=0)
    report_burst: int = Field(default=100, ge=1)
    # Peers: signer-set members (this node's own aggregator included) sign their requests
    # (oracle.node.peerauth) and are limited per signer address, not per IP.
    peer_rate_per_s: float = Field(default=500.0, gt=0)
    peer_burst: int = Field(default=5000, ge=1)
    peer_signers: tuple[str, ...] = Field(
        default=(), description="addresses accepted as peers besides this node's own key (with rpc_url "
                                "also the chain's signer set)")
    peer_auth_window_s: int = Field(default=60, ge=1, le=3600,
                                    description="how far a peer request's timestamp may be from this node's clock")

    # The server's edges (oracle.node.serving, oracle.node.api.guard).
    header_timeout_s: float = Field(default=10.0, gt=0, le=600,
                                    description="a request's headers must arrive within this time of its first byte")
    body_timeout_s: float = Field(default=20.0, gt=0, le=600,
                                  description="a request's body must arrive within this time of its headers")
    max_connections: int = Field(default=4096, ge=16, le=1_000_000,
                                 description="open connections beyond this get 503 (uvicorn limit_concurrency)")
    max_connections_per_ip: int = Field(default=256, ge=1, le=1_000_000,
                                        description="connections from one IP beyond this are closed on accept")
    max_inflight_body_bytes: int = Field(default=64 << 20, ge=1 << 20, le=4 << 30,
                                         description="request bodies being read at once, all clients together")

    # Storage: telemetry of closed rentals is archived (content-addressed file per rental) and
    # pruned from the database after the dispute window.
    archive_dir: Path | None = Field(default=None, description="default: <db_path's folder>/archive")
    dispute_window_s: int = Field(default=7 * 86_400, ge=0, le=365 * 86_400)

    # The chain side (all optional; see the module docstring). Without rpc_url: static rentals only.
    rpc_url: str | None = Field(default=None, description="JSON-RPC endpoint over http(s)")
    self_url: str | None = Field(
        default=None, description="how this node's own aggregator reaches this node's API (its signature "
                                  "counts like a peer's); default http://host:port (127.0.0.1 for a wildcard host)")
    chain_start_block: int = Field(default=0, ge=0, lt=2**63,
                                   description="first block to read events from (the market's deployment block)")
    confirmations: int = Field(default=2, ge=0, le=10_000,
                               description="blocks on top of an event's block before the node acts on it")
    chain_poll_interval_s: float = Field(default=2.0, gt=0, le=3600)
    settle_interval_s: float = Field(default=60.0, ge=0.1, le=86_400)
    submit_stagger_s: float = Field(
        default=20.0, ge=0, le=3600,
        description="a node waits this times its rank in the signer set between finding a quorum and "
                    "sending it, then reads the chain again: usually one node pays the gas and the others "
                    "find the report settled (make it longer than a transaction takes to be mined)")
    submit_settlements: bool | None = Field(
        default=None, description="submit settle/settleBatch/slash with the node key; default: true with rpc_url")
    settle_batch: bool = Field(default=True, description="several rentals per round go in one settleBatch")
    slash_faults: bool = Field(default=True, description="also submit quorum-signed fault reports (slash)")
    max_fee_per_gas_cap_wei: int = Field(default=500 * GWEI, ge=1, lt=2**256,
                                         description="never pay more per gas than this (EIP-1559 maxFeePerGas)")
    # Settling driven by value (oracle/node/settle_policy.py): a rental settles when its gas is at
    # most settle_max_gas_bps of what it owes, or settle_max_interval_s after its last settlement.
    settle_by_value: bool = Field(default=True, description="false: every rental with a new report settles "
                                                            "every round")
    settle_max_gas_bps: int = Field(default=100, ge=1, le=10_000,
                                    description="settle when gas costs at most this share (bps) of the amount")
    settle_max_interval_s: int = Field(default=6 * 3600, ge=1, le=30 * 86_400,
                                       description="settle at least this often (also kept under half the "
                                                   "rental's silence timeout)")
    settle_token_units_per_eth: int = Field(default=3_000 * 10**6, ge=1, lt=2**128,
                                            description="payment-token base units one ETH of gas is worth "
                                                        "(default: a 6-decimals USD token at 3,000 USD/ETH)")
    settle_gas_per_report: int = Field(default=GAS_PER_BATCHED_REPORT, ge=1, le=30_000_000,
                                       description="gas one report costs in settleBatch (reports/gas.json)")
    settle_max_rentals_per_round: int = Field(default=10_000, ge=1, le=1_000_000,
                                              description="rentals one round looks at; the rest go first next round")
    settle_max_reports_per_tx: int = Field(default=DEFAULT_MAX_REPORTS_PER_TX, ge=1, le=MAX_BATCH_REPORTS,
                                           description="reports per settleBatch (a contract cap below it wins)")
    operator_registry_address: str | None = Field(
        default=None, description="OperatorRegistry: settle through its settleFor/settleBatchFor (the node's "
                                  "gas is rebated); unset: settle on the market directly")
    faults_per_rental_per_round: int = Field(default=16, ge=1, le=256,
                                             description="fault ids of one rental looked at per round")

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Test-only fault injection (crash tests); refused outside dev mode.
    fault: Literal["kill_before_record", "kill_after_record", "kill_after_sign", "kill_after_store",
                   "lie_verdicts"] | None = None

    # Proof of GPU (docs/protocol.md, "Proof of GPU"). "model": challenges sized to each rental's
    # GPU model; "dev": the numpy-sized dev profile for every rental (dev mode only).
    challenges: Literal["off", "dev", "model"] = "off"
    challenge_mean_interval_s: int = Field(default=3_600, ge=60, le=7 * 86_400,
                                           description="mean seconds between challenges after the start one")
    challenge_quorum: int = Field(default=1, ge=1, le=64,
                                  description="verdicts (this node's included) that decide a challenge")
    challenge_check_telemetry: bool = Field(
        default=True, description="bind verdicts to the GPU's telemetry; false only in dev mode (CPU solver)")
    challenge_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    beacon_rpc_url: str | None = Field(
        default=None, description="where challenge beacons (blocks) come from; default rpc_url")
    challenge_clock: Literal["wall", "chain"] = Field(
        default="wall", description="chain: deadlines on the chain's clock as last seen (dev chains whose clock "
                                    "was set back, e.g. the demo's time-compressed replay)")

    @field_validator("market_address")
    @classmethod
    def _market_address(cls, value: str) -> str:
        return _checksum(value)

    @field_validator("peer_signers")
    @classmethod
    def _peer_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_checksum(address) for address in value)

    @field_validator("operator_registry_address")
    @classmethod
    def _registry_address(cls, value: str | None) -> str | None:
        return None if value is None else _checksum(value)

    @field_validator("peers")
    @classmethod
    def _peer_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not _HTTP_URL.match(url):
                raise ValueError(f"peer is not an http(s) URL: {url!r}")
        return value

    @field_validator("rpc_url", "self_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not _HTTP_URL.match(value):
            shown = redact_url(value) if info.field_name == "rpc_url" else value
            raise ValueError(f"not an http(s) URL (http://host:port...): {shown!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> "NodeSettings":
        if len({rental.rental_id for rental in self.rentals}) != len(self.rentals):
            raise ValueError("rentals: a rental_id is listed twice")
        self._refuse_unsafe_chain_settings()
        if self.keystore_password is not None and self.keystore_password_file is not None:
            raise ValueError("set keystore_password or keystore_password_file, not both")
        if self.challenges != "off" and (self.beacon_rpc_url or self.rpc_url) is None:
            raise ValueError("challenges need blocks to draw from: set rpc_url or beacon_rpc_url")
        if (not self.dev_mode and self.chain_id not in LOCAL_CHAIN_IDS
                and (self.challenges == "dev" or not self.challenge_check_telemetry or self.challenge_clock != "wall")):
            raise ValueError("challenges = \"dev\", challenge_check_telemetry = false and challenge_clock = \"chain\" "
                             "are for dev mode or a local dev chain only")
        if self.dev_mode:
            if self.private_key is None and self.keystore_path is None:
                raise ValueError("no node key: set keystore_path (or private_key in dev mode)")
            return self
        if self.private_key is not None:
            raise ValueError(
                "refusing a plaintext private_key outside dev mode: put the node key in an encrypted "
                "keystore (gpurent oracle keys new) and set keystore_path"
            )
        if self.fault is not None:
            raise ValueError("fault injection is for tests and needs dev_mode")
        if self.market_address == _ZERO_ADDRESS:
            raise ValueError("market_address is the zero address")
        if self.keystore_path is None:
            raise ValueError("keystore_path is required: the node key lives in an encrypted keystore")
        if not self.keystore_path.is_file():
            raise ValueError(f"keystore not found: {self.keystore_path}")
        from oracle.keys import check_password

        try:
            check_password(self._read_password())
        except KeystoreError as exc:
            raise ValueError(f"keystore password: {exc}") from None
        return self

    def _refuse_unsafe_chain_settings(self) -> None:
        if self.rpc_url is None:
            ignored = [name for name in CHAIN_FIELDS if name in self.model_fields_set]
            if ignored:
                raise ValueError(
                    f"{', '.join(ignored)} set but rpc_url is not: without an RPC endpoint the node follows "
                    f"no chain and only meters the rentals listed in its config (set rpc_url, or drop them)"
                )
            return
        if self.confirmations == 0 and not self.dev_mode and self.chain_id not in LOCAL_CHAIN_IDS:
            raise ValueError(
                f"confirmations = 0 acts on blocks that may still be reorganised away; it is for local dev "
                f"chains (chain id {', '.join(map(str, sorted(LOCAL_CHAIN_IDS)))}) or dev_mode, not chain "
                f"{self.chain_id}"
            )

    def settle_policy(self) -> SettlePolicy | None:
        """The :class:`~oracle.node.settle_policy.SettlePolicy` of these settings (None: every round)."""
        if not self.settle_by_value:
            return None
        return SettlePolicy(max_gas_cost_bps=self.settle_max_gas_bps, max_interval_s=self.settle_max_interval_s,
                            gas_per_report=self.settle_gas_per_report,
                            token_units_per_eth=self.settle_token_units_per_eth)

    @property
    def follows_chain(self) -> bool:
        """Whether the node follows market events (``rpc_url`` is set)."""
        return self.rpc_url is not None

    @property
    def submits_settlements(self) -> bool:
        """Whether the node submits settlement and fault reports itself (default: when it follows a chain)."""
        if self.rpc_url is None:
            return False
        return True if self.submit_settlements is None else self.submit_settlements

    @property
    def archive_path(self) -> Path:
        """Where closed rentals' telemetry archives go: ``archive_dir``, or ``archive`` beside the database."""
        return self.archive_dir if self.archive_dir is not None else Path(self.db_path).parent / "archive"

    @property
    def node_url(self) -> str:
        """This node's own API as its aggregator reaches it: ``self_url``, or one built from host and port."""
        if self.self_url is not None:
            return self.self_url
        host = self.host
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = "127.0.0.1"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def aggregation_urls(self) -> list[str]:
        """This node first, then its peers (duplicates dropped): where signatures are collected."""
        urls: list[str] = []
        for url in (self.node_url, *self.peers):
            url = url.rstrip("/")
            if url not in urls:
                urls.append(url)
        return urls

    def _read_password(self) -> str:
        if self.keystore_password is not None:
            return self.keystore_password.get_secret_value()
        if self.keystore_password_file is not None:
            try:
                return self.keystore_password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"cannot read keystore_password_file: {exc}") from exc
        return ""

    def load_node_key(self) -> bytes:
        """The node's 32-byte secp256k1 key: decrypted from the keystore, or (dev) the plaintext key."""
        if self.private_key is not None:
            text = self.private_key.get_secret_value().strip().removeprefix("0x")
            try:
                key = bytes.fromhex(text)
            except ValueError as exc:
                raise ConfigError("private_key is not hex") from exc
            if len(key) != 32:
                raise ConfigError("private_key must be 32 bytes")
            return key
        assert self.keystore_path is not None
        from oracle.keys import load_keystore

        try:
            return load_keystore(self.keystore_path, self._read_password(), dev=self.dev_mode)
        except KeystoreError as exc:
            raise ConfigError(f"cannot open keystore {self.keystore_path}: {exc}") from exc


# Reading settings from a file and the environment lives in settings_load (imported last: it
# builds on NodeSettings above); importing the loaders from here keeps working.
from oracle.node.settings_load import load_settings, load_settings_or_exit  # noqa: E402

__all__ = ["CHAIN_FIELDS", "LOCAL_CHAIN_IDS", "NodeSettings", "RentalConfig", "load_settings",
           "load_settings_or_exit", "redact_url"]
