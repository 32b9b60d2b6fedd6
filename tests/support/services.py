"""Real shared services for the scale-out tests, started on loopback and stopped after.

* Postgres: Debian's ``postgresql`` package, a throwaway cluster made with ``initdb`` and run
  with ``pg_ctl`` in a temporary directory (as the ``postgres`` user when the tests run as
  root, since Postgres refuses to run as root), trust authentication on 127.0.0.1 only.
* Ray: a local head (``ray start --head``) and worker nodes, each with its own raylet, so a
  test can kill one worker process and watch the run go on.

Neither is a fake: the code under test talks to them as it would in production.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


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
