"""The embedded llama.cpp build: it runs on this CPU, and when a build cannot, the user reads
one line naming the signal, that it is the llama.cpp build, and the command that rebuilds it.

The first test is CI's guard and uses the real build and model. The crash tests start a FAKE
stand-in server (testing/crashing_llama, shadowing ``llama_cpp`` on PYTHONPATH in the
CLI's subprocess) that kills itself with SIGSEGV or SIGILL as a crashing build does; the rest
of each command is real.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from caredio.llm.native_build import (
    NATIVE_ARGS,
    PORTABLE_ARGS,
    cpu_flags,
    crash_line,
    features_seen,
    rebuild_args,
    rebuild_command,
)
from testing.eval_fixtures import snack_files
from testing.jobs import CLI_WITH_FAKE_EMBEDDER, REPO_ROOT, fake_cli_env

STAND_IN = REPO_ROOT / "testing" / "crashing_llama"


@pytest.mark.embedded
def test_the_embedded_llama_cpp_build_completes_on_this_cpu() -> None:
    """CI's guard: the installed build answers a completion. Red with the CPU's flags and the
    rebuild command when it crashes (the native build on an AMX Xeon VM did)."""
    from caredio.errors import EmbeddedServerCrashed
    from caredio.llm.embedded import LocalLLMServer

    crash = None
    try:
        with LocalLLMServer(threads=1) as server:
            assert server.self_test_ms is not None
    except EmbeddedServerCrashed as exc:
        crash = str(exc)
    if crash:  # failed outside the handler, so the report shows the line once
        pytest.fail(f"{crash}\nCPU flags seen: {' '.join(sorted(cpu_flags()))}", pytrace=False)


def test_the_rebuild_is_portable_unless_the_cpu_predates_avx2() -> None:
    xeon_amx = {"avx2", "fma", "f16c", "avx512f", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"}
    zen4 = {"avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16"}
    old = {"sse4_2", "avx"}
    assert rebuild_args(xeon_amx) == PORTABLE_ARGS
    assert rebuild_args(zen4) == PORTABLE_ARGS
    assert rebuild_args(old) == NATIVE_ARGS  # the portable set assumes AVX2
    assert rebuild_args(set()) == PORTABLE_ARGS  # flags unknown (no /proc): the safe default
    assert features_seen(xeon_amx) == "avx2 fma f16c avx512f avx512_fp16 amx_tile amx_int8 amx_bf16"
    command = rebuild_command(xeon_amx)
    assert command.startswith(f'CMAKE_ARGS="{PORTABLE_ARGS}" ')
    # pip's wheel cache would hand back the crashing build it cached, whatever CMAKE_ARGS say.
    assert "--force-reinstall --no-cache-dir --no-deps" in command
    assert '"llama-cpp-python==' in command


def test_the_crash_line_names_the_signal_the_build_and_the_fix() -> None:
    line = crash_line(-signal.SIGSEGV, "on its start-up self-test")
    assert "\n" not in line
    assert "crashed with SIGSEGV on its start-up self-test" in line
    assert "llama-cpp-python" in line and "build" in line
    assert line.endswith(rebuild_command())


def _stand_in_env(tmp_path: Path, crash_at: str) -> dict[str, str]:
    env = fake_cli_env(CRASH_AT=crash_at, CRASH_LOG=str(tmp_path / "requests.log"))
    env["PYTHONPATH"] = f"{STAND_IN}:{env['PYTHONPATH']}"
    return env


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI_WITH_FAKE_EMBEDDER, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def _assert_one_line_diagnosis(done: subprocess.CompletedProcess[str], signal_name: str, when: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert f"crashed with {signal_name} {when}" in line, line
    assert "llama-cpp-python" in line and "build" in line, line
    assert 'CMAKE_ARGS="-DGGML_NATIVE=' in line and "--no-cache-dir" in line, line
    assert "Traceback" not in done.stderr


def _run_args(tmp_path: Path) -> list[str]:
    return ["run", "--cultures", "Japan", "--topics", "food_drink", "--contrast", "China",
            "--max-rounds", "1", "--memory", str(tmp_path / "memory"), "--out", str(tmp_path / "runs"),
            "--run-id", "crash", "--quiet"]


def test_run_stops_at_once_on_a_server_that_crashes_on_its_first_completion(tmp_path: Path) -> None:
    done = _cli(_run_args(tmp_path), _stand_in_env(tmp_path, "completion"), tmp_path)
    _assert_one_line_diagnosis(done, "SIGSEGV", "on its start-up self-test")
    # At once: the self-test was the only request (no retries, no agent call).
    assert (tmp_path / "requests.log").read_text().splitlines() == ["POST /v1/completions"]
    record = json.loads((tmp_path / "runs" / "crash" / "run.json").read_text())
    assert record["status"] == "failed" and "SIGSEGV" in record["error"]


def test_eval_stops_at_once_on_a_server_that_crashes_on_its_first_completion(tmp_path: Path) -> None:
    files = [str(p) for p in snack_files(tmp_path / "blend", {})]
    done = _cli(["eval", *files, "--task", "saq", "--out", str(tmp_path / "eval"), "--quiet"],
                _stand_in_env(tmp_path, "completion"), tmp_path)
    _assert_one_line_diagnosis(done, "SIGSEGV", "on its start-up self-test")
    assert (tmp_path / "requests.log").read_text().splitlines() == ["POST /v1/completions"]


def test_serve_names_a_server_killed_by_sigill_while_starting(tmp_path: Path) -> None:
    done = _cli(["local-llm", "serve"], _stand_in_env(tmp_path, "start"), tmp_path)
    _assert_one_line_diagnosis(done, "SIGILL", "while starting")
    assert not (tmp_path / "requests.log").exists()


def test_doctor_finds_a_crashing_build_and_prints_the_rebuild_command(tmp_path: Path) -> None:
    done = _cli(["doctor", "--json"], _stand_in_env(tmp_path, "completion"), tmp_path)
    assert done.returncode == 1, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert list(checks) == ["python", "llama.cpp build", "embedded model", "embedded server", "embeddings"]
    server = checks["embedded server"]
    assert not server["ok"] and "crashed with SIGSEGV" in server["detail"]
    assert server["fix"].startswith('CMAKE_ARGS="-DGGML_NATIVE=') and "--no-cache-dir" in server["fix"]
    assert all(checks[name]["ok"] for name in ("python", "embedded model", "embeddings"))
