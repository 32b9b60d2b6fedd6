"""Real shared services for the scale-out tests, started on loopback and stopped after.

* Postgres: Debian's ``postgresql`` package, a throwaway cluster made with ``initdb`` and run
  with ``pg_ctl`` in a temporary directory (as the ``postgres`` user when the tests run as
  root, since Postgres refuses to run as root), trust authentication on 127.0.0.1 only.
* Ray: a local head (``ray start --head``) whose worker processes run the sample workers, so a
  test can kill one worker process and watch the run go on.
* Chroma: the installed ``chroma`` command, a server a test may kill and start again.
* A small disk: a tmpfs a run fills up (real ENOSPC), mounted where the tests run as root.

None is a fake: the code under test talks to them as it would in production.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def missing_service(what: str) -> None:
    """Skip where a developer lacks the service; in CI (.ci/run installs it) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh Postgres cluster on 127.0.0.1; yields its postgresql:// URL."""
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        missing_service("Postgres (Debian package 'postgresql')")
    assert initdb and pg_ctl
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else None
    root = Path(tempfile.mkdtemp(prefix="caredio-pg-"))
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    subprocess.run([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, user=user, env=env, timeout=120)
    options = f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run([pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
                    "-t", "60", "start"], check=True, capture_output=True, user=user, env=env,
                   timeout=90)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, user=user, env=env, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def wait_until(ready: object, what: str, limit: float = 120) -> None:
    """Poll ``ready()``; the limit turns a hang into a failure, no timing is asserted."""
    deadline = time.monotonic() + limit
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


# A throwaway loopback cluster: no usage reports, no auth token (Ray 2.60 makes one by default).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


class RayCluster(NamedTuple):
    address: str
    session: int  # the session id of every process of the cluster


@contextlib.contextmanager
def ray_cluster(workers: int = 2) -> Iterator[RayCluster]:
    """A local Ray head on loopback with ``workers`` CPUs, so a run's ``workers`` sample
    worker actors (one CPU each) get a worker process each.

    One node: worker nodes of their own would add a raylet each (~20 s to start on a busy
    2-core machine) and test nothing more, since a test kills a worker *process*. Every
    process is started in a session of its own and stopped by its process group, never by
    name (`ray stop` would stop every Ray cluster on the machine).
    """
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.exists():
        missing_service("Ray (pip install 'caredio[scale]')")
    temp = tempfile.mkdtemp(prefix="crd-ray-", dir="/tmp")  # short: Ray's socket paths
    port = free_port()
    env = {**os.environ, **RAY_ENV, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
           # the test doubles (testing/) are imported by the workers
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    log_path = Path(temp) / "ray-start.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--port", str(port), "--num-cpus",
         str(workers), "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
         "--disable-usage-stats", "--temp-dir", temp],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def started() -> bool:
            if head.poll() is not None:
                pytest.fail(f"the Ray head exited:\n{log_path.read_text(errors='replace')[-3000:]}")
            return b"Ray runtime started" in log_path.read_bytes()

        wait_until(started, "the Ray head", limit=180)
        yield RayCluster(f"127.0.0.1:{port}", head.pid)
    finally:
        _stop_session(head)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def session_processes(session: int) -> dict[int, bytes]:
    """Pid -> command line of every process of a session (Ray's worker processes have process
    groups of their own, but stay in the session of the head that the test started)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == session:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes()
    return found


def _stop_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to every process of the session this test started (a throwaway cluster: nothing
    to shut down cleanly), found by session id, never by name."""
    for pid in session_processes(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


class ChromaServer:
    """A real Chroma server (the `chroma` command of the installed package) on loopback, which
    a test may kill (SIGKILL, as a crash would) and start again on the same port and data."""

    def __init__(self, path: Path) -> None:
        # chromadb is a core dependency, so its command is always installed: beside this Python
        # (a venv used without activating it) or on PATH. Missing is a broken install, not a skip.
        beside = Path(sys.executable).parent / "chroma"
        binary = str(beside) if beside.exists() else shutil.which("chroma")
        if binary is None:
            pytest.fail("the chromadb package's `chroma` command is not installed")
        self.command = [binary, "run", "--path", str(path), "--host", "127.0.0.1",
                        "--port", str(free_port())]
        self.url = f"http://127.0.0.1:{self.command[-1]}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChromaServer:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     env={"ANONYMIZED_TELEMETRY": "False", "PATH": "/usr/bin:/bin"})

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail("the Chroma server did not come up")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2):
                    return True
            except OSError:
                return False

        wait_until(answers, "the Chroma server", limit=60)
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class SmallDisk(NamedTuple):
    path: Path

    def grow(self, size: str) -> None:
        """Make room, as a user would: the same file system, files and all, now ``size``."""
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True,
                       capture_output=True)


@contextlib.contextmanager
def small_disk(mount_point: Path, size: str) -> Iterator[SmallDisk]:
    """A real file system of ``size`` (a tmpfs, mounted here: it needs root) that a run can fill
    up, so its writes meet a real ENOSPC from the kernel. Unmounted after, files and all."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode:
        missing_service(f"a tmpfs mount (root): {mounted.stderr.strip()}")
    try:
        yield SmallDisk(mount_point)
    finally:
        # Lazily if still busy (a process of the test not yet gone): never left mounted.
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
