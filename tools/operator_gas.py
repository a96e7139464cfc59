#!/usr/bin/env python3
"""Whole-transaction gas of a settlement submitted directly vs through the OperatorRegistry.

Deploys the market and registry on a fresh anvil (the integration tests' deployment: 2-of-3
quorum), bonds the three node keys, and settles one fresh rental's first report each way, with
real receipts: ``settle`` (the provider's first credit), ``settleFor`` (the operator's first
rebate, which writes its rebate slot) and ``settleFor`` again (steady state). docs/economics.md
("Operators") quotes the output. Run: ``PATH=node_modules/.bin:$PATH .venv/bin/python tools/operator_gas.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oracle.attestation.signing import sign_digest  # noqa: E402
from oracle.chain.anvil import Anvil  # noqa: E402
from tests.oracle.integration.conftest import GOVERNANCE, NODE_KEYS, deploy, open_active_rental  # noqa: E402
from tests.oracle.integration.test_operator_registry import MIN_BOND, _mint, _operator, _report  # noqa: E402


def main() -> dict[str, int]:
    with Anvil() as chain:
        deployed = deploy(chain)
        governance = deployed.client(GOVERNANCE)
        operators = [_operator(deployed, key) for key in NODE_KEYS]
        for op in operators:
            _mint(deployed, op.account, MIN_BOND)
            op.bond(deployed.token, MIN_BOND)
        gas = {}
        for label in ("settle_direct_first_provider_credit", "settle_for_first_rebate", "settle_for_steady_state"):
            rental = open_active_rental(deployed, budget=10**9, price_per_gpu_hour=10**6)
            chain.increase_time(600)
            chain.mine()
            now = int(governance.w3.eth.get_block("latest")["timestamp"])
            report = _report(rental_id=rental.rental_id, sequence=1, period_end=now, available_gpu_seconds=600,
                             signer_set_version=governance.signer_set().version)
            digest = governance.usage_report_digest(report)
            signatures = [sign_digest(key, digest) for key in NODE_KEYS[:2]]
            if label.startswith("settle_direct"):
                gas[label] = deployed.node_client(0).settle(report, signatures).gas_used
            else:
                gas[label] = operators[0].settle_for(report, signatures, digest).gas_used
        return gas


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
