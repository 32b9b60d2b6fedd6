"""A FAKE llama.cpp server that kills itself with a signal, as a crashing native build does.

``CRASH_AT=start``: SIGILL before it listens (a build with instructions this CPU lacks).
``CRASH_AT=completion`` (default): it listens and lists its model, then dies of SIGSEGV on the
first completion it is asked for (the native build on an AMX Xeon VM), after appending one
line per request to ``$CRASH_LOG`` so a test can count the requests that reached it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def log(line: str) -> None:
    path = os.environ.get("CRASH_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "stand-in", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        log(f"POST {self.path}")
        os.kill(os.getpid(), signal.SIGSEGV)

    def log_message(self, *args: object) -> None:
        pass  # quiet: the server's output is what a test reads on failure


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args, _ = parser.parse_known_args()
    if os.environ.get("CRASH_AT") == "start":
        os.kill(os.getpid(), signal.SIGILL)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


main()
