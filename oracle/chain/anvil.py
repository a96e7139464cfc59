"""A local anvil chain as a child process, for tests, demos and ``gpurent`` local work."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from oracle.errors import ChainError

# anvil's well-known development keys (mnemonic "test test ... junk"); never for real funds.
ANVIL_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the one helper for every server
    the tests, tools and demos start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Anvil:
    """``with Anvil() as chain: chain.url`` — a fresh anvil on a free port, killed on exit."""

    chain_id: int = 31337
    block_time_s: float | None = None  # None: automine (a block per transaction)
    port: int = 0
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Anvil":
        exe = shutil.which("anvil")
        if exe is None:
            raise ChainError("anvil is not on PATH (npm ci installs it under node_modules/.bin)")
        self.port = self.port or free_port()
        args = [exe, "--port", str(self.port), "--chain-id", str(self.chain_id), "--silent"]
        if self.block_time_s is not None:
            args += ["--block-time", str(self.block_time_s)]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChainError(f"anvil exited with {self.proc.returncode}")
            try:
                self.rpc("eth_chainId")
                return self
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise ChainError("anvil did not answer within 20 s")

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        r = requests.post(
            self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=10
        )
        body = r.json()
        if "error" in body:
            raise ChainError(f"{method}: {body['error']}")
        return body["result"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # conveniences over anvil's RPC
    def mine(self, blocks: int = 1, interval_s: int | None = None) -> None:
        params: list[Any] = [hex(blocks)] + ([hex(interval_s)] if interval_s is not None else [])
        self.rpc("anvil_mine", params)

    def increase_time(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", [seconds])

    def set_next_timestamp(self, ts: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", [ts])

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> bool:
        return bool(self.rpc("evm_revert", [snapshot_id]))

    def set_automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", [on])

    def __enter__(self) -> "Anvil":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def anvil_env_ok() -> bool:
    return shutil.which("anvil") is not None or os.path.exists("node_modules/.bin/anvil")
