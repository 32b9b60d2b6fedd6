"""Whether the installed llama.cpp build can run on this CPU, and what to do when it cannot.

llama-cpp-python is compiled by pip on the user's machine. llama.cpp's default build is native
(``-march=native``): on an AMX-capable Xeon under a hypervisor (a Firecracker VM, here) the
AMX matrix kernels it then compiles in crashed the server with SIGSEGV on its first completion,
while the portable build (``-DGGML_NATIVE=OFF``: SSE4.2, AVX, AVX2, FMA, F16C, BMI2) of the
same source ran at the same speed (docs/embedded.md). A native build copied to an older CPU
dies with SIGILL instead. Either way the fix is a rebuild, and the user is told the exact
command in one line.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import signal
import subprocess
import sys
from pathlib import Path

# The CPU features that decide which llama.cpp build runs here, in the order they are named.
FEATURES = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
            "amx_tile", "amx_int8", "amx_bf16")
PORTABLE_ARGS = "-DGGML_NATIVE=OFF"  # llama.cpp's x86-64 default set without -march=native
NATIVE_ARGS = "-DGGML_NATIVE=ON"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The flags the kernel reports for the first CPU (empty where there is no /proc)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def features_seen(flags: set[str]) -> str:
    """The deciding CPU features this machine has, e.g. ``avx2 avx512f amx_tile``."""
    present = [name for name in FEATURES if name in flags]
    return " ".join(present) if present else "none of " + " ".join(FEATURES)


def llama_cpp_version() -> str | None:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def build_features(python: str = sys.executable, timeout: float = 60.0) -> list[str]:
    """The CPU features the installed llama.cpp was compiled with (``AVX2``, ``AMX_INT8`` …).

    Asked in a child interpreter: loading the library is safe, but this runs when something
    native already failed, and the caller must survive whatever the child does.
    """
    code = ("import llama_cpp; print(llama_cpp.llama_cpp.llama_print_system_info()"
            ".decode(errors='replace'))")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []  # the diagnosis then names the CPU alone; nothing else depends on this
    if done.returncode:
        return []
    return [part.split("=")[0].strip() for part in done.stdout.replace("CPU :", "").split("|")
            if part.strip().endswith("= 1")]


def rebuild_args(flags: set[str]) -> str:
    """The CMAKE_ARGS that give a build this CPU runs.

    Portable unless the CPU lacks AVX2 (a pre-2013 x86-64, which the portable set assumes):
    there a native build is the one that fits, and it cannot pull in AMX, which such a CPU
    does not have.
    """
    if flags and "avx2" not in flags and not flags & {"amx_tile", "amx_int8"}:
        return NATIVE_ARGS
    return PORTABLE_ARGS


def pip_command() -> str:
    """How to call this environment's pip: ``pip`` when it is the one on PATH."""
    on_path = shutil.which("pip")
    mine = Path(sys.executable).with_name("pip")
    if on_path and mine.exists() and Path(on_path).resolve() == mine.resolve():
        return "pip"
    return f"{sys.executable} -m pip"


def rebuild_command(flags: set[str] | None = None) -> str:
    """The one command that replaces the installed build with one that runs here.

    ``--no-cache-dir``: pip would otherwise reinstall the crashing wheel it cached when it
    built it (its cache key is the source archive, not the build flags).
    """
    version = llama_cpp_version()
    requirement = f"llama-cpp-python=={version}" if version else "llama-cpp-python"
    args = rebuild_args(cpu_flags() if flags is None else flags)
    return (f'CMAKE_ARGS="{args}" {pip_command()} install --force-reinstall --no-cache-dir '
            f'--no-deps "{requirement}"')


def signal_name(returncode: int) -> str | None:
    """``SIGSEGV`` for a process killed by signal 11 (returncode -11), else None."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def crash_line(returncode: int, when: str) -> str:
    """One line: the signal, that it is the llama.cpp build, and the command that fixes it."""
    name = signal_name(returncode) or f"exit code {returncode}"
    flags = cpu_flags()
    version = llama_cpp_version() or "?"
    built = build_features()
    built_text = f" (built with {' '.join(built)})" if built else ""
    return (f"the embedded llama.cpp server crashed with {name} {when}: the installed "
            f"llama-cpp-python {version} build{built_text} does not run on this CPU "
            f"({features_seen(flags)}); rebuild it with: {rebuild_command(flags)}")

