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


ABOVE_THE_ACTIONS = ("cli", "demo", "web")


def _client_calls(path: Path) -> list[str]:
    """``<x>.client.<method>(...)``: a call made on the chain client itself."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "client"):
            found.append(f"{path.relative_to(ORACLE.parent)}:{node.lineno} .client.{node.func.attr}()")
    return found


def test_the_cli_demo_and_web_read_and_write_the_chain_only_through_the_actions_layer():
    """Issue 13: one path to the chain. Above oracle.actions, nothing calls the chain client's
    methods directly: reads go through oracle.actions.views / oracle.actions.reads, writes through
    the actions' plans."""
    offenders = [call for package in ABOVE_THE_ACTIONS
                 for path in sorted((ORACLE / package).rglob("*.py")) for call in _client_calls(path)]
    assert offenders == []
