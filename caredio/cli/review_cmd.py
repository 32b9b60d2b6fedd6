"""``caredio review RUN_DIR`` (the local review app) and ``caredio review merge A B``.

``caredio review RUN_DIR`` is ``caredio review open RUN_DIR``: the group runs ``open`` when its
first word is not one of its commands, so the short form the design names works beside merge.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from caredio.cli.options import default

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _OpenByDefault(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["open", *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(
    cls=_OpenByDefault, no_args_is_help=True, rich_markup_mode="rich",
    help="Review a run's samples in a local web app (keyboard: j/k, a, r, e, u); merge two "
    "reviewers' files. `caredio review RUN_DIR` is `caredio review open RUN_DIR`.")


def _reviewer(name: str | None) -> str:
    from caredio.errors import UserInputError

    chosen = (name if name is not None else os.environ.get("USER", "")).strip()
    if not chosen:
        raise UserInputError("--reviewer: give your name (no $USER to take it from)")
    if len(chosen) > 64 or not chosen.isprintable():
        raise UserInputError("--reviewer: at most 64 printable characters")
    return chosen


@review_app.command("open")
def open_command(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory (made by `caredio run`)."),
    reviewer: str = typer.Option(None, "--reviewer", metavar="NAME", help="Your name, recorded with every decision." + default("$USER")),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS", help="Address to listen on; anything but loopback makes the app reachable from other machines (over plain HTTP; the token is still required)."),
    port: int = typer.Option(None, "--port", metavar="N", help="Port to listen on." + default("a free port")),
) -> None:
    """Start the review app; its URL (with a one-time token) is the first line of output."""
    import secrets

    from caredio.cli.consoles import err_console
    from caredio.errors import UserInputError
    from caredio.review.app import bind, create_app, missing_dependencies, serve, url_of
    from caredio.review.session import ReviewSession

    missing = missing_dependencies()
    if missing:
        raise UserInputError(missing)
    from caredio.rundir.reader import open_run

    open_run(run_dir)  # not a run: said first, it is the command's argument
    port = 0 if port is None else port
    if not 0 <= port <= 65535:
        raise UserInputError(f"--port: {port} is not a port number (0 picks a free one)")
    name = _reviewer(reviewer)
    session = ReviewSession(run_dir, name)  # every check on the input before anything listens
    rescorer = session.rescorer  # the run's settings are checked here, before anything listens
    sock = bind(host, port)
    token = secrets.token_urlsafe(24)
    print(url_of(sock, host, token), flush=True)
    if host not in LOOPBACK:
        err_console.print(f"warning: listening on {host}: other machines can reach this app over plain "
                          "HTTP; anyone with the URL can review as you", markup=False, soft_wrap=True)
    progress = session.progress()
    err_console.print(f"reviewing {progress['total']} samples of {session.run.dir} as {name} "
                      f"({progress['reviewed']} reviewed so far); decisions go to "
                      f"{session.log.path}; Ctrl-C stops", markup=False, soft_wrap=True)
    for warning in session.log.warnings:
        err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)
    # The embedding model loads while the reviewer reads, not on their first save.
    threading.Thread(target=_warm, args=(rescorer,), name="review-warm", daemon=True).start()
    serve(create_app(session, token), sock)


def _warm(rescorer: Any) -> None:
    from caredio.cli.consoles import err_console
    from caredio.errors import CaredioError

    try:
        rescorer.warm()
    except CaredioError as exc:  # the first save says it again, where the reviewer looks
        err_console.print(f"warning: edits cannot be re-scored: {exc}", markup=False, soft_wrap=True)


@review_app.command("merge")
def merge_command(
    file_a: Path = typer.Argument(..., metavar="FILE_A", help="One reviewer's review.jsonl."),
    file_b: Path = typer.Argument(..., metavar="FILE_B", help="Another reviewer's review.jsonl."),
    out: Path = typer.Option(None, "--out", metavar="PATH", help="Write the merged file here (a run directory: its review.jsonl)." + default("only report")),
) -> None:
    """Two reviewers' agreement where they overlap (Cohen's kappa), their disagreements, one merged file."""
    from caredio.review.merge import merge, write_merged
    from caredio.rundir.formats import REVIEW

    merged = merge(file_a, file_b)
    who_a, who_b = ", ".join(merged.reviewers_a) or "nobody", ", ".join(merged.reviewers_b) or "nobody"
    print(f"{file_a}: {who_a}; {file_b}: {who_b}; {merged.shared} samples reviewed by both")
    if merged.shared:
        kappa = "undefined (both gave every shared sample one and the same category)" \
            if merged.kappa is None else f"{merged.kappa:.3f}"
        print(f"agreement on keep/reject: {merged.agreement:.3f}; Cohen's kappa: {kappa}")
    for item in merged.disagreements:
        print(f"disagree {item.sample_id}: {who_a} {_said(item.a)} / {who_b} {_said(item.b)}")
    for sample_id in merged.edited_differently:
        print(f"both kept {sample_id}, with different text")
    if out is not None:
        target = out / REVIEW if out.is_dir() else out
        write_merged(merged, target)
        print(f"wrote {len(merged.decisions)} decisions to {target}")
    else:
        print("give --out PATH to write the merged file")


def _said(decision: Any) -> str:
    reason = decision.get("reason")
    return decision["decision"] + (f" ({reason})" if reason else "")


def register(cli: typer.Typer) -> None:
    cli.add_typer(review_app, name="review")
