"""A local anvil chain that outlives the command that started it (``gpurent chain start``).

The chain runs detached from the terminal; a small state file (``<home>/chain/anvil.json``
with pid, port, URL and chain id) lets ``gpurent chain status``/``stop`` find it again. With
``persist=True`` (what ``gpurent chain start`` does) anvil keeps the chain itself in
``<home>/chain/anvil-state-<chain id>.json`` (``--state``, dumped every few seconds and on exit),
so a restarted local chain still has its deployment, balances and rentals.
``stop`` only ever signals the pid it recorded, and only if that process is still an anvil.

Dev accounts are anvil's well-known ones (mnemonic "test test ... junk"), funded with 10,000
ETH each by anvil; ``gpurent deploy`` mints test stablecoins to them on a local chain. They are
public keys: never use them on a real network.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS
from oracle.deployment import gpurent_home
from oracle.errors import ChainError

DEFAULT_PORT = 8545
LOCAL_CHAIN_ID = 31337


def dev_key(index: int) -> str:
    """Private key of anvil dev account ``index`` (0..9)."""
    if not 0 <= index < len(ANVIL_KEYS):
        raise ChainError(f"dev account {index} does not exist: anvil has 0..{len(ANVIL_KEYS) - 1}")
    return ANVIL_KEYS[index]


def dev_address(index: int) -> str:
    return Account.from_key(dev_key(index)).address


def dev_accounts() -> list[str]:
    return [dev_address(i) for i in range(len(ANVIL_KEYS))]


@dataclass(frozen=True)
class ChainState:
    pid: int
    port: int
    url: str
    chain_id: int
    log: str
    started_at: float


def _rpc(url: str, method: str, params: list | None = None, timeout: float = 2.0):
    response = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                             timeout=timeout)
    body = response.json()
    if "error" in body:
        raise ChainError(f"{method}: {body['error']}")
    return body["result"]


def _is_anvil(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (macOS): trust the recorded pid if it is alive
            return True
        except OSError:
            return False
    return any(part.endswith(b"anvil") or b"/anvil" in part for part in cmdline[:2])


class LocalChain:
    """Start, find and stop one detached anvil whose state lives under ``state_dir``."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else gpurent_home() / "chain"
        self.state_file = self.state_dir / "anvil.json"

    def state(self) -> ChainState | None:
        try:
            return ChainState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def running(self) -> ChainState | None:
        """The recorded chain if its process is alive and answers RPC, else None."""
        state = self.state()
        if state is None or not _is_anvil(state.pid):
            return None
        try:
            _rpc(state.url, "eth_chainId")
        except (requests.RequestException, ChainError, ValueError):
            return None
        return state

    def start(
        self,
        *,
        port: int = DEFAULT_PORT,
        chain_id: int = LOCAL_CHAIN_ID,
        host: str = "127.0.0.1",
        block_time_s: float | None = None,
        timestamp: int | None = None,
        timeout_s: float = 20.0,
        persist: bool = False,
    ) -> ChainState:
        """Start anvil detached; returns its state. Refuses if one is already recorded running.
        ``persist``: load the chain saved by an earlier run (if any) and keep saving it."""
        current = self.running()
        if current is not None:
            raise ChainError(f"a local chain is already running at {current.url} (pid {current.pid}); "
                             "`gpurent chain stop` first")
        exe = shutil.which("anvil")
        if exe is None:
            raise ChainError("anvil is not on PATH: run `make setup` (npm installs it under node_modules/.bin)")
        url = f"http://{host}:{port}"
        try:
            _rpc(url, "eth_chainId", timeout=0.5)
            raise ChainError(f"something already answers JSON-RPC at {url}; pick another --port")
        except (requests.RequestException, ValueError):
            pass
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.state_dir / "anvil.log"
        args = [exe, "--host", host, "--port", str(port), "--chain-id", str(chain_id), "--accounts", "10"]
        if block_time_s is not None:
            args += ["--block-time", str(block_time_s)]
        if timestamp is not None:
            args += ["--timestamp", str(timestamp)]
        if persist:
            args += ["--state", str(self.saved_state(chain_id)), "--state-interval", "2"]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        state = ChainState(pid=proc.pid, port=port, url=url, chain_id=chain_id, log=str(log_path),
                           started_at=time.time())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ChainError(f"anvil exited with status {proc.returncode}; see {log_path}")
            try:
                _rpc(url, "eth_chainId", timeout=0.5)
                break
            except (requests.RequestException, ValueError):
                time.sleep(0.1)
        else:
            proc.terminate()
            raise ChainError(f"anvil did not answer at {url} within {timeout_s:.0f} s; see {log_path}")
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.state_file)
        return state

    def saved_state(self, chain_id: int) -> Path:
        """Where a persisted chain of ``chain_id`` is kept between runs."""
        return self.state_dir / f"anvil-state-{int(chain_id)}.json"

    def stop(self, timeout_s: float = 10.0) -> ChainState | None:
        """Stop the recorded anvil (SIGINT, so that it saves its state, then SIGKILL); returns what
        was stopped, or None."""
        state = self.state()
        if state is None:
            return None
        if _is_anvil(state.pid):
            # npm's `anvil` is a node launcher with the real binary as its child; both are in the
            # session (process group) started for them, so the whole group is signalled.
            _signal_group(state.pid, signal.SIGINT)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and _alive(state.pid):
                time.sleep(0.05)
            if _alive(state.pid):
                _signal_group(state.pid, signal.SIGKILL)
                while _alive(state.pid) and time.monotonic() < deadline + 5:
                    time.sleep(0.05)
            # The launcher may exit before the anvil binary it started has saved its state and let go
            # of the port: wait for the port to go quiet, then make sure of it.
            while time.monotonic() < deadline and _answers(state.url):
                time.sleep(0.05)
            if _answers(state.url):
                try:
                    os.killpg(state.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                quiet_by = time.monotonic() + 5
                while time.monotonic() < quiet_by and _answers(state.url):
                    time.sleep(0.05)
        try:
            self.state_file.unlink()
        except FileNotFoundError:
            pass
        return state


def _answers(url: str) -> bool:
    try:
        _rpc(url, "eth_chainId", timeout=0.3)
        return True
    except (requests.RequestException, ChainError, ValueError):
        return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:  # started with start_new_session: it leads its own group
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie child of ours counts as gone; reap it if we are its parent.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return True


def warp(url: str, seconds: int) -> int:
    """Move a local anvil's clock ``seconds`` forward and mine a block there; its new time."""
    if seconds < 0:
        raise ChainError("the chain's clock only moves forward")
    _rpc(url, "evm_increaseTime", [int(seconds)])
    _rpc(url, "evm_mine", [])
    return int(_rpc(url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def fund_eth(url: str, address: str, wei: int) -> None:
    """Set ``address``'s ETH balance on a local anvil (gas money for a node or a fresh wallet)."""
    _rpc(url, "anvil_setBalance", [address, hex(int(wei))])


def mint_test_tokens(url: str, token: str, to: str, units: int) -> str:
    """Mint ``units`` of a deployment's TestStablecoin (open ``mint``) to ``to``, sent by dev
    account 0; the transaction hash. Local chains only: a real token has no such function."""
    from oracle.chain.artifacts import get_artifact
    from oracle.chain.contract import BoundContract, connect
    from oracle.chain.tx import TransactionSender

    sender = TransactionSender(connect(url, timeout_s=10.0), Account.from_key(dev_key(0)))
    token_contract = BoundContract(sender, token, get_artifact("TestStablecoin").abi)
    return token_contract.transact("mint", to, int(units)).tx_hash
