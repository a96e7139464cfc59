"""Node settings from a TOML/JSON file, then ``GPURENT_NODE_*`` environment variables, then
keyword overrides (:func:`load_settings`); :func:`load_settings_or_exit` for entry points."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from oracle.errors import ConfigError
from oracle.node.settings import CONFIG_ENV, ENV_PREFIX, NodeSettings


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    fields = NodeSettings.model_fields
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        field = name[len(ENV_PREFIX):].lower()
        if field not in fields:
            raise ConfigError(f"unknown setting {name} (known: {', '.join(ENV_PREFIX + f.upper() for f in fields)})")
        if field in ("peers", "rentals", "peer_signers"):
            text = raw.strip()
            if text.startswith("["):
                try:
                    values[field] = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{name} is not valid JSON: {exc}") from exc
            elif field in ("peers", "peer_signers"):
                values[field] = [part.strip() for part in text.split(",") if part.strip()]
            else:
                raise ConfigError(f"{name} must be a JSON list")
        else:
            values[field] = raw
    return values


_PATH_FIELDS = ("keystore_path", "keystore_password_file", "db_path", "archive_dir")


def _file_values(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    for name in _PATH_FIELDS:  # relative paths in a file are relative to the file
        if isinstance(data.get(name), str) and not Path(data[name]).expanduser().is_absolute():
            data[name] = str(path.parent / data[name])
    return data


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> NodeSettings:
    """Settings from a file, then env vars, then keyword overrides. Raises :class:`ConfigError`."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = config_file or env.get(CONFIG_ENV)
    if config_file:
        values.update(_file_values(Path(config_file)))
    values.update(_env_values(env))
    values.update(overrides)
    try:
        return NodeSettings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "invalid node settings: " + "; ".join(lines)


def load_settings_or_exit(config_file: str | Path | None = None, **overrides: Any) -> NodeSettings:
    """For entry points: a clear one-line message and exit status 1 instead of a traceback."""
    try:
        return load_settings(config_file, **overrides)
    except ConfigError as exc:
        raise SystemExit(f"gpurent node: {exc}") from None
