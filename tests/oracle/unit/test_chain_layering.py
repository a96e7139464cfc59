"""Imports point one way (STYLE.md): the chain layer (oracle.chain) and the pure cores never import
the node; the node's rental feed lives in oracle.node.feed (it used to sit in oracle/chain/events.py
and import oracle.node.rentals, a back-edge)."""

from __future__ import annotations

import ast
from pathlib import Path

ORACLE = Path(__file__).resolve().parents[3] / "oracle"
BELOW_THE_NODE = ("chain", "attestation", "metering", "telemetry")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nothing_below_the_node_imports_it():
    offenders = [
        f"{path.relative_to(ORACLE.parent)} imports {name}"
        for package in BELOW_THE_NODE
        for path in sorted((ORACLE / package).rglob("*.py"))
        for name in _imports(path) if name == "oracle.node" or name.startswith("oracle.node.")
    ]
    assert offenders == []
