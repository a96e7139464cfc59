"""Contract ABIs and bytecode without Brownie.

ABIs for the chain client come from ``oracle/chain/abi/<Name>.json`` (exported by the contracts'
toolchain). Bytecode, needed to deploy from Python (tests, ``gpurent deploy``), comes from the
exported JSON when it carries one, else from compiling ``contracts/`` and ``interfaces/`` with
py-solc-x (solc 0.8.30 through the project's solc-js shim) with the same settings as
``foundry.toml`` / ``brownie-config.yaml``. Compiler output is cached under
``build/chain-artifacts/`` keyed by a hash of every source and the settings, so only a source
change pays for a compile.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from oracle.errors import ChainError

ABI_DIR = Path(__file__).resolve().parent / "abi"
SOLC_VERSION = "0.8.30"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200  # as foundry.toml and brownie-config.yaml (the market fits EIP-170 at 200)

_compile_lock = threading.Lock()


@dataclass(frozen=True)
class ContractArtifact:
    """ABI and creation bytecode of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code; "0x" for interfaces and abstract contracts
    source: str = ""

    @property
    def deployable(self) -> bool:
        return len(self.bytecode) > 2


def project_root() -> Path:
    """The repository root: the nearest parent of this package holding ``contracts/``."""
    env = os.environ.get("GPURENT_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "contracts").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def _abi_from_json(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("abi"), list):
        return data["abi"]
    raise ChainError("ABI file holds neither a list nor an object with an 'abi' list")


def _bytecode_from_json(data: Any) -> str:
    if not isinstance(data, dict):
        return "0x"
    code = data.get("bytecode")
    if isinstance(code, dict):  # forge layout: {"object": "0x..."}
        code = code.get("object")
    if not isinstance(code, str) or not code:
        return "0x"
    return code if code.startswith("0x") else "0x" + code


def load_abi(name: str, abi_dir: Path | None = None) -> list[dict[str, Any]]:
    """The ABI of ``name`` from the exported JSON (``oracle/chain/abi/<name>.json``).

    Falls back to compiling the sources when no exported file exists (a fresh checkout in
    which the export has not run yet).
    """
    path = (abi_dir or ABI_DIR) / f"{name}.json"
    if path.is_file():
        return _abi_from_json(json.loads(path.read_text()))
    return get_artifact(name).abi


def _solidity_files(root: Path, dirs: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        base = root / d
        if base.is_dir():
            files.extend(p for p in base.rglob("*.sol") if "node_modules" not in p.parts)
    return sorted(files)


def _via_ir(root: Path) -> bool:
    foundry = root / "foundry.toml"
    if not foundry.is_file():
        return False
    for line in foundry.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("via_ir", "via-ir"):
            return value.strip().lower().startswith("true")
    return False


def _standard_input(root: Path, files: list[Path]) -> dict[str, Any]:
    sources = {str(p.relative_to(root)): {"content": p.read_text()} for p in files}
    settings: dict[str, Any] = {
        "evmVersion": EVM_VERSION,
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }
    if _via_ir(root):
        settings["viaIR"] = True
    return {"language": "Solidity", "sources": sources, "settings": settings}


def compile_contracts(
    root: Path | None = None,
    source_dirs: Iterable[str] = ("contracts", "interfaces"),
    cache_dir: Path | None = None,
) -> dict[str, ContractArtifact]:
    """Compile every ``.sol`` under ``source_dirs`` (relative to ``root``); cached by content.

    Returns contract name -> artifact. A name defined in two files keeps the one under
    ``contracts/`` (implementations win over interfaces and mocks of the same name).
    """
    root = (root or project_root()).resolve()
    files = _solidity_files(root, source_dirs)
    if not files:
        raise ChainError(f"no Solidity sources under {root} in {list(source_dirs)}")
    std_input = _standard_input(root, files)
    raw = _compile_cached(root, std_input, cache_dir)
    return _artifacts_from_output(raw)


def compile_sources(sources: dict[str, str], root: Path | None = None, cache_dir: Path | None = None) -> dict[str, ContractArtifact]:
    """Compile in-memory Solidity sources (unit name -> text), with the project's settings."""
    root = (root or project_root()).resolve()
    std_input = _standard_input(root, [])
    std_input["sources"] = {name: {"content": text} for name, text in sorted(sources.items())}
    return _artifacts_from_output(_compile_cached(root, std_input, cache_dir))


def _compile_cached(root: Path, std_input: dict[str, Any], cache_dir: Path | None) -> dict[str, Any]:
    key_material = json.dumps(std_input, sort_keys=True).encode() + SOLC_VERSION.encode()
    key = hashlib.sha256(key_material).hexdigest()[:24]
    cache_dir = cache_dir or root / "build" / "chain-artifacts"
    cache_file = cache_dir / f"{key}.json"
    with _compile_lock:
        if cache_file.is_file():
            return json.loads(cache_file.read_text())
        raw = _run_solc(root, std_input)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(raw))
        os.replace(tmp, cache_file)
        return raw


def _artifacts_from_output(raw: dict[str, Any]) -> dict[str, ContractArtifact]:
    artifacts: dict[str, ContractArtifact] = {}
    for source in sorted(raw, key=lambda s: (not s.startswith("contracts/"), s)):
        for name, out in raw[source].items():
            if name in artifacts:
                continue
            code = out.get("evm", {}).get("bytecode", {}).get("object", "")
            artifacts[name] = ContractArtifact(
                name=name, abi=out.get("abi", []), bytecode="0x" + code, source=source
            )
    return artifacts


def _run_solc(root: Path, std_input: dict[str, Any]) -> dict[str, Any]:
    try:
        import solcx
    except ImportError as exc:  # pragma: no cover - dev dependency
        raise ChainError("py-solc-x is needed to compile the contracts") from exc
    try:
        out = solcx.compile_standard(
            std_input,
            base_path=str(root),
            allow_paths=[str(root), str(root / "node_modules")],
            solc_version=SOLC_VERSION,
        )
    except Exception as exc:  # solcx raises its own SolcError with the compiler output
        raise ChainError(f"solc {SOLC_VERSION} failed: {exc}") from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ChainError("solc errors:\n" + "\n".join(e.get("formattedMessage", "") for e in errors))
    return out.get("contracts", {})


def get_artifact(name: str, root: Path | None = None) -> ContractArtifact:
    """ABI and bytecode of contract ``name``: the exported JSON if it has bytecode, else compiled."""
    path = ABI_DIR / f"{name}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        code = _bytecode_from_json(data)
        if len(code) > 2:
            return ContractArtifact(name=name, abi=_abi_from_json(data), bytecode=code, source=str(path))
    artifacts = compile_contracts(root)
    if name not in artifacts:
        raise ChainError(f"no contract named {name!r} in the compiled sources")
    return artifacts[name]
