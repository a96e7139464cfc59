#!/usr/bin/env python3
"""Export contract ABIs to ``oracle/chain/abi/<Name>.json`` so Python loads them without a compiler.

Builds with forge (artifacts under build/foundry/out) and writes, for each name:
- deployable contracts (GpuRentMarket, its linked libraries, TestStablecoin, OperatorRegistry):
  ``{"contractName", "abi", "bytecode", "linkReferences"}``. GpuRentMarket's bytecode holds
  library placeholders (``__$<34 hex>$__``); ``linkReferences`` gives, per library, the byte
  offsets where its deployed address goes (see tools/gas_report.py ``link``).
- interfaces (IGpuRentMarket and its feature interfaces): ``{"contractName", "abi"}``.

Output is deterministic (sorted keys, stable order), so the committed JSONs only change when the
contracts do. Run: ``.venv/bin/python tools/export_abi.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "oracle" / "chain" / "abi"
DEPLOYABLE = (
    "GpuRentMarket", "OfferLogic", "StakingLogic", "GovernanceLogic", "RentalLogic", "SettlementLogic",
    "MarketTimelock", "TestStablecoin",
    "OperatorRegistry",
)
INTERFACES = (
    "IGpuRentMarket",
    "IOracleQuorum",
    "IProviderStaking",
    "IOfferBook",
    "IRentalEscrow",
    "IUsageSettlement",
    "IReputation",
    "IOperatorRegistry",
)


def _forge_build() -> None:
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}:{env.get('PATH', '')}"
    subprocess.run(["forge", "build"], cwd=ROOT, env=env, check=True, capture_output=True)


def _artifact(name: str) -> dict:
    return json.loads((ROOT / "build" / "foundry" / "out" / f"{name}.sol" / f"{name}.json").read_text())


def export(out_dir: Path = OUT_DIR) -> list[Path]:
    _forge_build()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DEPLOYABLE + INTERFACES:
        data = _artifact(name)
        doc: dict = {"contractName": name, "abi": data["abi"]}
        if name in DEPLOYABLE:
            doc["bytecode"] = data["bytecode"]["object"]
            doc["linkReferences"] = data["bytecode"].get("linkReferences", {})
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def main() -> int:
    for path in export():
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
