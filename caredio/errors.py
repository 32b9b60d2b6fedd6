"""The error taxonomy.

Three kinds, handled differently:

* ``UserInputError`` — bad input or configuration from the user. The CLI prints one line
  naming the file, line or field and exits with code 2; nothing partial is left behind.
* ``ModelOutputError`` — the model answered but the answer is unusable (does not parse,
  misses fields, is empty). Recorded in the trace and retried with the error fed back.
* ``ServiceUnreachable`` — a ``UserInputError``: a shared service the run was pointed at
  (the Chroma server of ``--memory-url``, the Postgres of ``--checkpoint-url``, the Ray
  cluster of ``--ray-address``) does not answer at start-up. Exit code 2, never a hang.
* ``EndpointError`` — the endpoint could not be reached or kept failing after retries.
  The sample is marked failed; the run goes on.
* ``EndpointDown`` — an ``EndpointError`` that every later call would meet too (the endpoint
  stopped answering for good, or refuses the credentials). The run stops at once, with its
  status and finished samples on disk, instead of failing sample after sample.
* ``EmbeddedServerCrashed`` — an ``EndpointDown``: the embedded llama.cpp server died of a
  signal (SIGSEGV, SIGILL). That is the native build, not the endpoint: the one-line message
  names the signal and the command that rebuilds it (caredio/native_build.py).
* ``ServiceLost`` — a shared service the run was using (the Chroma server of ``--memory-url``)
  stopped answering part-way. Every later step would meet it too: the run stops at once.
* ``WriteFailed`` — a file could not be written (the disk is full, over quota, read-only);
  the message names the file. Also an ``OSError``, so code that handled the OSError still does.
* ``RunStopped`` — a run stopped part-way by one of the two above: one line naming the cause,
  what is kept on disk and the ``caredio resume`` command; run.json says "interrupted".
  Exit code 1 (not bad input), like every error that is not ``UserInputError``.

Anything else is a bug in CAReDiO and is raised as it is.
"""

from __future__ import annotations


class CaredioError(Exception):
    """Base class of the errors CAReDiO raises on purpose."""


class UserInputError(CaredioError):
    """Bad input or configuration; exit code 2 with a one-line reason."""


class ServiceUnreachable(UserInputError):
    """A configured Chroma server, Postgres or Ray cluster does not answer at start-up."""


class ModelOutputError(CaredioError):
    """The model's reply could not be turned into the expected structure."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


class EndpointError(CaredioError):
    """The LLM endpoint failed for good (after retries) or is unreachable."""


class EndpointDown(EndpointError):
    """The endpoint is unusable for the whole run: down for good or refusing our key."""


class EmbeddedServerCrashed(EndpointDown):
    """The embedded llama.cpp server was killed by a signal: its build cannot run here."""


class ServiceLost(CaredioError):
    """A shared service stopped answering mid-run (unlike ServiceUnreachable, not at start-up)."""


class WriteFailed(CaredioError, OSError):
    """A file could not be written. Built like an OSError (errno, strerror, the file's path);
    its message names the path in words: "no space left on device writing runs/r/trace.jsonl"."""

    def __str__(self) -> str:
        reason = self.strerror or "cannot write"
        return f"{reason[:1].lower()}{reason[1:]} writing {self.filename}"


class RunStopped(CaredioError):
    """A run stopped part-way by a lost service or a failed write; its finished samples are on
    disk and ``caredio resume`` continues it."""
