"""Resolving the settings: a TOML file, ``CAREDIO_*`` environment variables and CLI flags.

Precedence, highest first: flags, environment, TOML file, defaults. A bad value is reported
in one line under the name the user gave it: the flag, the file's key or the variable.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from caredio.config.settings import Settings
from caredio.errors import UserInputError


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserInputError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: cannot read config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{path}: invalid TOML: {exc}") from None


# The command-line flags of `caredio run` (and of eval and memory, a subset) by the field each
# sets, so that a bad value is reported under the name the user typed.
FLAGS = {
    "cultures": "--cultures", "topics": "--topics", "samples_per_topic": "--samples-per-topic",
    "loop.max_rounds": "--max-rounds", "out": "--out", "run_id": "--run-id",
    "memory.path": "--memory", "memory.url": "--memory-url", "contrast": "--contrast",
    "llm.base_url": "--base-url", "llm.model": "--model", "llm.gguf": "--gguf",
    "llm.seed": "--seed", "llm.cache": "--cache", "concurrency": "--concurrency", "prompts_dir": "--prompts",
    "strategy": "--strategy", "best_of_n": "--best-of-n", "judge.split": "--judge-split",
    "executor": "--executor", "ray_address": "--ray-address", "ray_workers": "--ray-workers",
    "checkpoint_url": "--checkpoint-url", "telemetry.otlp_endpoint": "--otlp-endpoint",
}


def _flag_of(loc: tuple[Any, ...], flags: dict[str, Any]) -> str | None:
    """The flag that gave the field at ``loc`` (or the list holding it) its value, if one did."""
    for end in range(len(loc), 0, -1):
        flag = FLAGS.get(".".join(map(str, loc[:end])))
        value: Any = flags
        for part in loc[:end]:
            value = value.get(part) if isinstance(value, dict) else None
        if flag and value is not None and not isinstance(value, dict):
            return flag
    return None


def describe_validation_error(exc: ValidationError, origin: str,
                              flags: dict[str, Any] | None = None) -> str:
    """One line naming the offending field, e.g. ``config.toml: llm.tmperature: extra ...``.

    When ``flags`` (the command line's values, nested as the settings) set that field, the
    flag is named instead of ``origin``: ``--base-url: llm.base_url: ...``.
    """
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(root)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "value_error":
        message = message.removeprefix("Value error, ")  # pydantic's wrapping of our own reasons
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    flag = _flag_of(tuple(first["loc"]), flags or {})
    if flag:
        return f"{flag}: {field}: {message}{more}"
    return f"{origin}: {field}: {message}{more}"


def load_settings(config_file: str | Path | None = None, **flags: Any) -> Settings:
    """Resolve settings: flags > environment > TOML file > defaults.

    ``flags`` use nested dicts for sub-tables (``llm={"model": ...}``); ``None`` values are
    dropped so an unset flag never hides the file or the environment.
    """
    file_values = read_toml(config_file) if config_file else {}
    flag_values = _drop_none(flags)
    origin = str(config_file) if config_file else "settings"
    # Environment sits between the file and the flags: pydantic-settings applies init
    # kwargs over the environment, so the file is validated first and re-applied below.
    try:
        env_only = Settings()
    except ValidationError as exc:
        raise UserInputError(describe_validation_error(exc, "environment")) from None
    env_set = env_only.model_dump(exclude_unset=True)
    merged = _deep_merge(_deep_merge(file_values, env_set), flag_values)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise UserInputError(describe_validation_error(exc, origin, flag_values)) from None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            inner = _drop_none(value)
            if inner:
                cleaned[key] = inner
        elif value is not None:
            cleaned[key] = value
    return cleaned
