"""`gpurent wallet new|import`: encrypted keystores, never overwritten; a private key comes from the
environment or stdin, never from an argument (issue 11)."""

from __future__ import annotations

import json
import stat

from click.testing import CliRunner
from eth_account import Account

from oracle.cli.main import main

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ENV = {"GPURENT_PASSWORD": "a-long-enough-password"}


def test_wallet_import_encrypts_the_key_from_the_environment_or_stdin(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["wallet", "import", str(tmp_path / "a.json"), "--fast-kdf", "--json"],
                        env={**ENV, "GPURENT_PRIVATE_KEY": "0x" + KEY})
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["address"] == Account.from_key(bytes.fromhex(KEY)).address
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o600
    piped = runner.invoke(main, ["wallet", "import", str(tmp_path / "b.json"), "--fast-kdf", "--json"],
                          env=ENV, input=KEY + "\n")
    assert piped.exit_code == 0 and json.loads(piped.output)["address"] == json.loads(out.output)["address"]


def test_wallet_refuses_a_bad_key_and_never_overwrites(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["wallet", "import", str(tmp_path / "c.json"), "--fast-kdf"], env=ENV, input="xyz\n")
    assert bad.exit_code == 2 and "64 hex digits" in bad.output and not (tmp_path / "c.json").exists()
    made = runner.invoke(main, ["wallet", "new", str(tmp_path / "d.json"), "--fast-kdf"], env=ENV)
    assert made.exit_code == 0 and "gpurent chain fund" in made.output, made.output
    again = runner.invoke(main, ["wallet", "new", str(tmp_path / "d.json"), "--fast-kdf"], env=ENV)
    assert again.exit_code == 2 and "never overwritten" in again.output
