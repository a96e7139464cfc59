"""Every `gpurent` command, fed a corpus of bad inputs, answers with one line that says what is
wrong, exit code 2 and no traceback, before it sends anything (issue 11).

The commands are enumerated from the click tree, so a new command or option is covered (or the
test fails until its parameter is given a kind below). Each bad value is tried with the other
arguments valid, against a live anvil with a deployment, a staked provider, an offer (1) and an
open rental (1): a value that slipped through would reach the chain and fail differently.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, Iterator

import click
import pytest
from click.testing import CliRunner

from oracle.cli.main import main
from oracle.localchain import LocalChain, dev_address
from oracle.traces import TRACE_TRAIN

pytestmark = [pytest.mark.integration]

ADDR = dev_address(6)
DEAD_URL = "http://127.0.0.1:9"

# Bad values by kind of parameter ({MISSING}, {DIR}, {BINARY}, {EMPTY} become paths at run time).
BAD: dict[str, list[str]] = {
    "amount": ["-1", "abc", "nan", "inf", "1e80", "0.00000001", "", "1.2.3"],
    "positive_amount": ["-1", "abc", "nan", "1e80", "0.00000001", "", "0"],
    "price_or_zero": ["-1", "abc", "nan", "1e80", "0.00000001", "", "1e30"],
    "price": ["-1", "abc", "nan", "1e80", "0.00000001", "", "0", "1e30"],  # 1e30: above uint72/uint96
    "int": ["abc", "-7", str(2**256), "1.5", ""],
    "id": ["abc", "-7", "0", str(2**256), ""],
    "address": ["0x1234", "", "0x" + "zz" * 20, "hello"],
    "url": ["", "not a url", "ftp://x.example/", "http://"],
    "name32": ["", "   ", "x" * 33],
    "file": ["{MISSING}", "{DIR}", "{BINARY}", "{EMPTY}"],
    "float": ["abc", "-1", "nan", "inf", ""],
    "choice": ["bogus"],
    "filter": ["nonsense", "price<=abc", "colour=red", "reputation>=x", "gpus>=1e400"],
    "env": ["NOEQUALS", "=x"],
    "host": ["", "not a host!"],
    "dir": ["{BINARY}"],
    "spool": ["{MISSING}", "{DIR}", "{BINARY}"],
    "duration": ["-1", "x", "3x", "", "1e9", "2 days"],
    "eth": ["-1", "abc", "nan", "1e80", "", "0.0000000000000000001"],
}

# The kind of every parameter, by name (or "command path:name" where one name means two things).
KIND: dict[str, str | None] = {
    "amount": "positive_amount", "budget": "price", "price_per_gpu_hour": "price",
    "price_per_kwh": "price_or_zero", "min_stake_per_gpu": "positive_amount", "reputation_prior": "positive_amount",
    "offer_id": "id", "rental_id": "id", "gpu_count": "int", "gpus": "int", "threshold": "int", "fee_bps": "int",
    "start_timeout": "int", "silence_timeout": "int", "settlement_grace": "int", "operator_fee_share_bps": "int",
    "timelock_delay": "int", "grid_intensity_g_per_kwh": "int", "grid_intensity": "int",
    "max_duration_seconds": "int", "min_uptime_bps": "int", "max_gap_seconds": "int", "max_gap_ms": "int",
    "every": "int", "offset": "int", "power_limit_mw": "int", "power_limit_w": "int", "memory_mib": "int",
    "port": "int", "chain_id": "int", "tail": "int", "not_before_ms": "int", "batch_samples": "int",
    "unbonding_days": "float", "max_rental_days": "float", "block_time": "float", "speed": "float",
    "sample_hz": "float", "nvml_seconds": "float", "stop_node_after": "float",
    "signers": "address", "payment_token": "address", "treasury": "address", "proposer": "address",
    "agent": "address", "token": "address", "to": "address", "account": "address", "limit": "int", "address": "address", "operator": "address", "market": "address",
    "nodes": "url", "urls": "url", "provider_url": "url",
    "gpu_model": "name32", "model": "name32", "region": "name32",
    "trace": "file", "config_file": "file", "config_path": "file", "ssh_key": "file", "password_file": "file",
    "meter:trace": "file", "agent requeue:spool": "spool", "rpc": "url",
    "sort": "choice", "source": "choice", "preset": "choice",
    "filters": "filter", "env": "env", "host": "host", "state_dir": "dir", "duration": "duration",
    "eth": "eth", "tokens": "amount", "renter": "address", "watch_s": "float", "data_dir": "dir",
    "confirmations": "int", "public_url": "url", "peers": "url", "db_path": None,
    # free text: any string is a valid value
    "image": None, "cmd": None, "workdir": None, "src": None, "dest": None, "spool": None, "path": None,
    "key_env": None,
}
SKIP = {"deployments", "as_json", "keystore", "password_env", "dev_account", "help"}

# Valid values for the other parameters of a command while one is under test.
GOOD: dict[str, str] = {
    "offer_id": "1", "rental_id": "1", "amount": "1", "budget": "1", "nodes": DEAD_URL, "urls": DEAD_URL,
    "signers": ADDR, "address": ADDR, "model": "NVIDIA H100 80GB HBM3", "power_limit_w": "700", "memory_mib": "81559",
    "cmd": "true", "src": "a.txt", "dest": ":/root/", "trace": str(TRACE_TRAIN), "spool": "{SPOOL}",
    "keystore": "{KEYSTORE}", "password_file": "{PWFILE}",
}
# Extra valid options a command needs to get as far as sending (the value under test replaces its own).
BASE: dict[str, list[str]] = {
    "provider offer create": ["--gpu-model", "NVIDIA H100 80GB HBM3", "--price-per-gpu-hour", "1", "--agent", ADDR,
                              "--region", "SE"],
    "agent run": ["--rental", "1", "--chain-id", "31337", "--node", DEAD_URL, "--source", "replay",
                  "--trace", str(TRACE_TRAIN), "--speed", "1000"],
    "meter": ["--power-limit-mw", "700000"],
}
SIGNER = {"rent": "2", "governance": "0", "deploy": "0"}


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, path + (name,))
        else:
            yield " ".join(path + (name,)), command


def cases() -> list[tuple[str, str, str]]:
    out = []
    for path, command in commands():
        for param in command.params:
            if param.name in SKIP or (isinstance(param, click.Option) and param.is_flag):
                continue
            kind = KIND.get(f"{path}:{param.name}", KIND.get(param.name, "unclassified"))
            if kind is None:
                continue
            for value in BAD.get(kind, ["<unclassified parameter: give it a kind in KIND>"]):
                out.append((path, param.name, value))
    return out


class _Timeout(BaseException):
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import os

    home = tmp_path_factory.mktemp("home")
    os.environ["GPURENT_HOME"] = str(home)
    local = LocalChain(home / "chain")
    from oracle.chain.anvil import free_port

    state = local.start(port=free_port())
    deployments = home / "deployments.json"
    files = {"MISSING": str(home / "missing.csv"), "DIR": str(home), "BINARY": str(home / "binary.bin"),
             "EMPTY": str(home / "empty.csv")}
    Path(files["BINARY"]).write_bytes(bytes(range(256)) * 64)
    Path(files["EMPTY"]).write_bytes(b"")
    from oracle.agent.spool import Spool

    files["SPOOL"] = str(home / "agent-spool.sqlite3")
    files["KEYSTORE"] = str(home / "agent.json")
    files["PWFILE"] = str(home / "password.txt")
    Path(files["PWFILE"]).write_text("a-long-enough-password\n")
    Spool(files["SPOOL"]).close()
    chain = ["--rpc", state.url, "--deployments", str(deployments)]
    runner = CliRunner()
    try:
        for argv in (["deploy", "--signer", dev_address(7), "--dev-account", "0"],
                     ["provider", "stake", "300", "--dev-account", "1"],
                     ["provider", "offer", "create", "--gpu-model", "NVIDIA H100 80GB HBM3", "--price-per-gpu-hour",
                      "1", "--agent", ADDR, "--region", "SE", "--dev-account", "1"],
                     ["rent", "open", "1", "--budget", "5", "--dev-account", "2"]):
            result = runner.invoke(main, argv + chain + ["--json"])
            assert result.exit_code == 0, (argv, result.output)
        keystore = home / "agent.json"
        result = runner.invoke(main, ["oracle", "keys", "new", str(keystore), "--fast-kdf"],
                               env={"GPURENT_PASSWORD": "a-long-enough-password"})
        assert result.exit_code == 0, result.output
        yield {"chain": chain, "files": files, "home": home, "keystore": keystore}
    finally:
        local.stop()
        os.environ.pop("GPURENT_HOME", None)


def _argv(world: dict[str, Any], path: str, command: click.Command, name: str, value: str) -> list[str]:
    value = value.format(**world["files"])
    positional: list[str] = []
    options: list[str] = list(BASE.get(path, []))
    if path == "agent run":
        options += ["--keystore", str(world["keystore"]), "--spool", str(world["home"] / "spool.sqlite3")]
    has_chain = any(p.name == "rpc" for p in command.params)
    for param in command.params:
        if isinstance(param, click.Argument):
            positional.append(value if param.name == name else GOOD.get(param.name, "1").format(**world["files"]))
        elif param.name == name:
            flag = param.opts[0]
            if flag in options:
                i = options.index(flag)
                del options[i:i + 2]
            options += [flag, value]
        elif param.required and param.name not in SKIP:
            options += [param.opts[0], GOOD.get(param.name, "1").format(**world["files"])]
    argv = path.split() + positional + options
    if has_chain:
        argv += [] if name == "rpc" else world["chain"][:2]
        if any(p.name == "deployments" for p in command.params):
            argv += world["chain"][2:]
        if path == "deploy":  # a deployment that slipped through must not replace the one the others use
            argv[argv.index("--deployments") + 1] = str(world["home"] / "scratch-deployments.json")
    elif path == "agent run" and name != "rpc":
        argv += ["--rpc", world["chain"][1]]
    if any(p.name == "dev_account" for p in command.params):
        argv += ["--dev-account", SIGNER.get(path.split()[0], "1")]
    return argv


@pytest.mark.parametrize("path, name, value", cases(), ids=lambda v: str(v)[:40])
def test_every_command_refuses_bad_input_with_one_line_and_exit_2(world: dict[str, Any], path: str, name: str,
                                                                  value: str) -> None:
    command = dict(commands())[path]
    argv = _argv(world, path, command, name, value)

    def expire(*_: Any) -> None:
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    try:
        result = CliRunner().invoke(main, argv, env={"GPURENT_PASSWORD": "a-long-enough-password",
                                                     "GPURENT_AGENT_PASSWORD": "a-long-enough-password",
                                                     "GPURENT_DEBUG": None})
    except _Timeout:
        pytest.fail(f"`gpurent {' '.join(argv)}` accepted the bad value and ran on")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    output = result.output
    where = f"`gpurent {' '.join(argv)}` ->\n{output}"
    assert "Traceback" not in output and not isinstance(result.exception, _Timeout), where
    assert result.exit_code == 2, where
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and len(lines[0]) > len("Error: ") + 10, where
    assert "internal error" not in output, where
    param = next(p for p in command.params if p.name == name)
    names = [param.human_readable_name, *getattr(param, "opts", [])]
    said = [n.strip("'") for n in names] + ([value.format(**world["files"])] if len(value) > 2 else [])
    if value.startswith("-"):
        said.append("negative")
    assert any(n in lines[0] for n in said), f"the error names {names[0]} or the value: {where}"


def test_the_corpus_reaches_every_command_and_kind() -> None:
    covered = {path for path, _, _ in cases()}
    every = {path for path, command in commands()
             if any(p.name not in SKIP and not (isinstance(p, click.Option) and p.is_flag) and
                    KIND.get(f"{path}:{p.name}", KIND.get(p.name, "x")) is not None for p in command.params)}
    assert covered == every
    assert not [c for c in cases() if c[2].startswith("<unclassified")], "classify every parameter in KIND"
    assert json.dumps(BAD)  # the corpus is plain data


@pytest.mark.parametrize("argv, flag, what", [
    (["wallet", "balance"], "ADDRESS", "wallet"),
    (["provider", "status"], "ADDRESS", "status"),
    (["provider", "rentals"], "ADDRESS", "rentals"),
    (["rent", "list"], "--renter ADDRESS", "rentals"),
])
def test_a_command_about_an_account_without_one_or_a_wallet_says_which_to_give(
        world: dict[str, Any], argv: list[str], flag: str, what: str) -> None:
    result = CliRunner().invoke(main, argv + world["chain"], env={"GPURENT_DEBUG": None})
    assert result.exit_code == 2, result.output
    assert f"give {flag}, or --keystore FILE / --dev-account N for your own {what}" in result.output, result.output
    assert "Traceback" not in result.output
