"""Config precedence (flags > env > TOML > defaults) and one-line errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caredio.config.loading import load_settings
from caredio.config.settings import MAX_ROUNDS, LLMSettings
from caredio.errors import UserInputError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "caredio.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.loop.max_rounds == 3
    assert settings.llm.base_url is None
    assert settings.scoring.lam == 0.5


def test_toml_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path, 'concurrency = 3\n[llm]\nmodel = "from-file"\ntemperature = 0.1\n'
                             '[loop]\nmax_rounds = 5\n')
    settings = load_settings(config)
    assert (settings.concurrency, settings.llm.model, settings.loop.max_rounds) == (3, "from-file", 5)

    monkeypatch.setenv("CAREDIO_LLM__MODEL", "from-env")
    monkeypatch.setenv("CAREDIO_CONCURRENCY", "7")
    settings = load_settings(config)
    assert (settings.concurrency, settings.llm.model) == (7, "from-env")
    assert settings.llm.temperature == 0.1  # untouched keys keep the file's value

    settings = load_settings(config, concurrency=9, llm={"model": "from-flag", "base_url": None})
    assert (settings.concurrency, settings.llm.model) == (9, "from-flag")
    assert settings.loop.max_rounds == 5  # an unset flag (None) hides nothing


def test_unknown_key_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "[llm]\ntemperatur = 0.3\n")
    with pytest.raises(UserInputError, match=r"caredio.toml: llm.temperatur: unknown key"):
        load_settings(config)


def test_out_of_range_values_are_named(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"concurrency"):
        load_settings(concurrency=0)
    with pytest.raises(UserInputError, match=r"loop.max_rounds"):
        load_settings(loop={"max_rounds": -1})
    assert load_settings(loop={"max_rounds": MAX_ROUNDS}).loop.max_rounds == MAX_ROUNDS
    with pytest.raises(UserInputError, match=rf"loop.max_rounds: .*less than or equal to {MAX_ROUNDS}"):
        load_settings(loop={"max_rounds": MAX_ROUNDS + 1})


def test_unreadable_toml(tmp_path: Path) -> None:
    config = write(tmp_path, "this is = = not toml\n")
    with pytest.raises(UserInputError, match="invalid TOML"):
        load_settings(config)
    with pytest.raises(UserInputError, match="not found"):
        load_settings(tmp_path / "missing.toml")


def test_per_role_settings_fall_back_to_llm_table() -> None:
    llm = LLMSettings(model="base", temperature=0.5, roles={"refiner": {"model": "big", "temperature": 0.1}})
    assert llm.for_role("refiner").model == "big"
    assert llm.for_role("refiner").temperature == 0.1
    assert llm.for_role("culture_expert").model == "base"
    with pytest.raises(ValueError, match="unknown role"):
        LLMSettings(roles={"judge": {}})


def test_an_api_key_cannot_enter_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys come from the environment variable *named* by llm.api_key_env, read when a client is
    built; no settings field holds one, so no config file or snapshot can."""
    monkeypatch.setenv("CAREDIO_LLM__API_KEY", "sk-planted-secret-123")
    with pytest.raises(UserInputError, match=r"environment: llm.api_key: unknown key"):
        load_settings()
    monkeypatch.delenv("CAREDIO_LLM__API_KEY")
    with pytest.raises(UserInputError, match=r"llm.api_key: unknown key"):
        load_settings(llm={"api_key": "sk-planted-secret-123"})


def test_snapshot_redacts_every_url_credential() -> None:
    """The config written to a run directory: user, password and query string of every URL
    (endpoint, per-role endpoints, Chroma server) are gone; the rest of each URL stays."""
    secret = "pw-planted-7x"
    settings = load_settings(
        llm={"base_url": f"http://alice:{secret}@10.0.0.1:8000/v1",
             "roles": {"refiner": {"base_url": f"https://api.example/v1?key={secret}"}}},
        memory={"url": f"http://bob:{secret}@chroma:8000"},
    )
    snapshot = settings.snapshot()
    assert secret not in json.dumps(snapshot)
    assert snapshot["llm"]["base_url"] == "http://REDACTED@10.0.0.1:8000/v1"
    assert snapshot["llm"]["roles"]["refiner"]["base_url"] == "https://REDACTED@api.example/v1"
    assert snapshot["memory"]["url"] == "http://REDACTED@chroma:8000"
    assert settings.llm.base_url and secret in settings.llm.base_url  # still usable in memory
