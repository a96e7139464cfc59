"""oracle.provider sits above the agent: it may import agent, chain, telemetry and the pure cores;
nothing below it (or beside it, the node) imports it."""

from __future__ import annotations

import ast
from pathlib import Path

ORACLE = Path(__file__).resolve().parents[2] / "oracle"
BELOW = ("agent", "attestation", "chain", "metering", "node", "proof", "telemetry")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nothing_below_the_provider_daemon_imports_it():
    offenders = [
        f"{path.relative_to(ORACLE.parent)} imports {name}"
        for package in BELOW if (ORACLE / package).is_dir()
        for path in sorted((ORACLE / package).rglob("*.py"))
        for name in _imports(path) if name == "oracle.provider" or name.startswith("oracle.provider.")
    ]
    assert offenders == []


def test_the_provider_daemon_imports_no_cli_or_demo():
    offenders = [f"{path.name} imports {name}" for path in sorted((ORACLE / "provider").glob("*.py"))
                 for name in _imports(path) if name.startswith(("oracle.cli", "oracle.demo"))]
    assert offenders == []
