"""The settings of a run being resumed: its own config snapshot, with the URL secrets that
were kept off disk given back (flag or environment) and the resumer's choice of executor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from caredio.config.loading import describe_validation_error
from caredio.config.settings import Settings
from caredio.config.urls import is_redacted
from caredio.errors import UserInputError


def restore_url(url: str | None, override: str | None, env: str, what: str,
                flag: str | None = None) -> str | None:
    """A URL whose secrets were kept off disk must come back from a flag or the environment."""
    if override:
        return override
    if not is_redacted(url):
        return url
    if os.environ.get(env):
        return os.environ[env]
    raise UserInputError(f"{what}: the run's URL had credentials, which are never stored; "
                         f"pass it again ({f'{flag} or ' if flag else ''}${env})")


def resumed_settings(run_dir: Path, **overrides: Any) -> Settings:
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise UserInputError(f"{run_dir}: not a run directory (no config.json)")
    try:
        snapshot = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{config_path}: unreadable run config: {exc}") from None
    llm = snapshot.setdefault("llm", {})
    llm["base_url"] = restore_url(llm.get("base_url"), overrides.get("base_url"),
                                  "CAREDIO_LLM__BASE_URL", "llm.base_url", "--base-url")
    for name, role in llm.get("roles", {}).items():
        role["base_url"] = restore_url(role.get("base_url"), None,
                                       f"CAREDIO_LLM__ROLES__{name.upper()}__BASE_URL",
                                       f"llm.roles.{name}.base_url")
    memory = snapshot.setdefault("memory", {})
    memory["url"] = restore_url(memory.get("url"), None, "CAREDIO_MEMORY__URL", "memory.url")
    snapshot["checkpoint_url"] = restore_url(snapshot.get("checkpoint_url"),
                                             overrides.get("checkpoint_url"),
                                             "CAREDIO_CHECKPOINT_URL", "checkpoint_url",
                                             "--checkpoint-url")
    if overrides.get("cache") is not None:  # so is the response cache it uses
        llm["cache"] = overrides["cache"]
    for key in ("executor", "ray_address"):  # where a resume runs is the resumer's choice
        if overrides.get(key):
            snapshot[key] = overrides[key]
    if overrides.get("executor") == "local":
        snapshot["ray_address"] = None
    # What the resumer passed (flags), nested as the settings, so an error names the flag.
    flags: dict[str, Any] = {key: value for key, value in overrides.items() if value}
    llm_flags = {key: flags.pop(key) for key in ("base_url", "cache") if key in flags}
    if llm_flags:
        flags["llm"] = llm_flags
    try:
        return Settings(**snapshot)
    except ValidationError as exc:
        raise UserInputError(describe_validation_error(exc, str(config_path), flags)) from None
