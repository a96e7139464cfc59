"""The attestation node service: ingest signed telemetry, meter it, record and sign reports.

Public names (``docs/protocol.md`` module map): :func:`create_app`, :class:`NodeSettings`,
:func:`run_node`; durable state in :mod:`oracle.node.storage`. Imported lazily so that the
storage and settings modules do not pull in the web stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "NodeSettings", "load_settings", "load_settings_or_exit", "run_node"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from oracle.node.app import create_app

        return create_app
    if name in ("NodeSettings", "load_settings", "load_settings_or_exit"):
        from oracle.node import settings

        return getattr(settings, name)
    if name == "run_node":
        from oracle.node.server import run_node

        return run_node
    raise AttributeError(f"module 'oracle.node' has no attribute {name!r}")
