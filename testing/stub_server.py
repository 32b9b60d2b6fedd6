"""A FAKE OpenAI-compatible chat-completions server on loopback, for tests and benchmarks only.

Nothing here is a language model. Every answer is filler text or a value generated from the
JSON schema the client asked for: structurally valid, semantically meaningless. It exists to
exercise our own client logic (retry, structured-output fallback, resume) against injected
faults (429, 500, slow, dropped connections, truncated / invalid / empty replies), and to give
the throughput benchmark a server that answers every call after a fixed latency. Never treat
its output as data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testing.schema_example import _WORDS, example_from_schema, varied, varied_text

OUTCOMES = ("ok", "429", "500", "slow", "drop", "truncated", "cut_off", "invalid_json", "empty",
            "json_schema_rejected", "bad_request", "html")
_ERRORS = {  # outcome -> (status, message, OpenAI error type)
    "bad_request": (400, "stream=true is not supported by the stub", "invalid_request_error"),
    "json_schema_rejected": (500, "response_format json_schema is not supported "
                             "(the stub mimics llama-cpp-python)", "server_error"),
    "429": (429, "rate limited by the stub (injected)", "rate_limit_error"),
    "500": (500, "internal error (injected by the stub)", "server_error"),
}
_OBJECT_START = re.compile(r'\{\s*"')
# status (0 = drop), JSON body (or a text one), extra headers
Reply = tuple[int, dict[str, Any] | str, dict[str, str]]


@dataclass
class FaultPlan:
    """Per-request fault probabilities; one seeded uniform draw is compared to cumulative rates."""

    rate_429: float = 0.0
    retry_after: float = 0.1
    rate_500: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 5.0
    rate_drop: float = 0.0
    rate_truncated: float = 0.0
    rate_invalid_json: float = 0.0
    rate_empty: float = 0.0
    reject_json_schema: bool = False  # llama-cpp-python's server answers 500 to json_schema
    seed: int = 0
    script: tuple[str, ...] = ()  # outcomes of the first requests, in order, before any draw
    rule: Callable[[dict[str, Any]], str | None] | None = None  # request body -> forced outcome


def _text(content: Any) -> str:
    """Message content as text; OpenAI also allows a list of typed parts."""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _schema_in_text(text: str) -> dict[str, Any] | None:
    """A JSON schema embedded in a prompt: a ```json fence first, else the first bare `{...}`."""
    fence, decoder = text.find("```json"), json.JSONDecoder()
    after_fence = [len(text) - len(text[fence + 7:].lstrip())] if fence != -1 else []
    for start in after_fence + [m.start() for m in _OBJECT_START.finditer(text)]:
        try:  # only `{"` starts: failed decodes are costly, and prompts can be full of braces
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and (isinstance(value.get("properties"), dict)
                                        or "$ref" in value):  # self-referencing pydantic models
            return value
    return None


def _prompt_schema(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Schema from the latest user/system message that carries one (the prompt-and-parse path)."""
    for message in reversed(messages):
        if message.get("role") in ("user", "system"):
            found = _schema_in_text(_text(message.get("content")))
            if found is not None:
                return found
    return None


def _chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t.get("function", {}) for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == name), None)
    return tools[0] if len(tools) == 1 or choice == "required" else None


def _err(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 stalls bursts of concurrent connects
    stub: StubOpenAIServer

    def server_bind(self) -> None:  # skip HTTPServer's getfqdn(), which can block on DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on slow answers are expected; keep test output clean


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive (httpx pools connections): always Content-Length
    disable_nagle_algorithm = True  # else headers+body as two writes hit a 40 ms delayed-ACK stall
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.stub._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.stub._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: dict[str, Any] | str,
              headers: dict[str, str] | None = None) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        try:
            self.send_response(status)
            for key, value in {"Content-Type": "application/json",
                               "Content-Length": str(len(data)), **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (e.g. timed out on a slow answer)
            self.close_connection = True

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":  # answers at once, even while replies are slow
            healthy = self.server.stub.healthy
            self.server.stub.health_checks += 1
            self._send(200 if healthy else 503, {"status": "ok" if healthy else "down"})
        elif self.path.rstrip("/") == "/v1/models":
            model = {"id": "stub-model", "object": "model", "owned_by": "stub"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._send(404, _err(f"no route {self.path}", "not_found_error"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # read it all first
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, _err(f"no route {self.path}", "not_found_error"))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._send(400, _err("body is not a JSON object", "invalid_request_error"))
        self.server.stub._seen_headers(self.headers)
        status, payload, headers = self.server.stub._handle(body)
        if status == 0:  # drop: write nothing; the server closes the socket once we return
            self.close_connection = True
            return None
        return self._send(status, payload, headers)


class StubOpenAIServer:
    """Fake OpenAI chat-completions endpoint on a daemon thread; see the module docstring."""

    def __init__(self, latency: float = 0.0, faults: FaultPlan | None = None,
                 host: str = "127.0.0.1", port: int = 0,
                 responder: Callable[[dict[str, Any]], str] | None = None,
                 structured: Callable[[dict[str, Any], str, Any], Any] | None = None,
                 varied_text: bool = False) -> None:
        """``responder(body)``: the text of plain (unstructured) replies. ``structured(body,
        schema name, generated value)``: the value of structured replies, for tests whose
        fake must answer according to the prompt (the default is filler that ignores it).
        ``varied_text``: every string is random sentences that never repeat (benchmarks: no
        embedding cache hits, as with real answers), not the 16-word filler."""
        self.latency, self.faults, self.responder = latency, faults or FaultPlan(), responder
        self.structured = structured
        self.varied_text = varied_text
        self.healthy = True  # what GET /health says (tests of the liveness watch)
        self.health_checks = 0
        self.host, self.port = host, port
        self.requests: list[dict[str, Any]] = []
        self.stats: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._count = 0
        self._script = list(self.faults.script)
        self.in_flight = 0
        self.max_in_flight = 0
        self.events: list[tuple[str, int, str]] = []  # ("start" | "end", request number, outcome)
        # When each request's handling started and ended (time.monotonic(), one clock for every
        # process of the machine): tests of pauses compare them with each other, never with a
        # fixed duration.
        self.started_at: dict[int, float] = {}
        self.ended_at: dict[int, float] = {}
        self.authorizations: list[str] = []  # Authorization headers seen (tests of secrets)
        self._conns: dict[socket.socket, threading.Thread] = {}  # open connection -> handler
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # wakes handlers sleeping on latency / slow faults

    @property
    def health_url(self) -> str:
        return self.url.removesuffix("/v1") + "/health"

    @property
    def url(self) -> str:
        """Base URL incl. "/v1"; stays valid (and refused) after stop() or set_down(True)."""
        if not self.port:
            raise RuntimeError("StubOpenAIServer: call start() first")
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> StubOpenAIServer:
        """Bind (the same port again after stop / set_down) and serve on a daemon thread."""
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer((self.host, self.port), _Handler)
            self._httpd.stub = self
            self.port = self._httpd.server_address[1]
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                            name=f"stub-openai-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every open keep-alive connection, then wait for handlers."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns.items())
        for conn, _ in conns:  # pooled client connections would otherwise keep being served
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._stopping.set()  # after the shutdowns, so woken handlers cannot answer any more
        for _, handler in conns:
            if handler is not threading.current_thread():
                handler.join(timeout=2)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def set_down(self, down: bool) -> None:
        """Down: nothing listens, clients get connection refused. Up again: rebind the port."""
        (self.stop if down else self.start)()

    def __enter__(self) -> StubOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns[conn] = threading.current_thread()
            else:
                self._conns.pop(conn, None)

    def _outcome(self, body: dict[str, Any]) -> tuple[str, int]:
        """Record the request and pick its outcome: one seeded draw against cumulative rates."""
        f = self.faults
        rates = (("429", f.rate_429), ("500", f.rate_500), ("slow", f.rate_slow),
                 ("drop", f.rate_drop), ("truncated", f.rate_truncated),
                 ("invalid_json", f.rate_invalid_json), ("empty", f.rate_empty))
        fmt = body.get("response_format") or {}
        with self._lock:
            self.requests.append(body)
            self._count += 1
            if body.get("stream"):
                outcome = "bad_request"
            elif f.reject_json_schema and fmt.get("type") == "json_schema":
                outcome = "json_schema_rejected"
            elif f.rule is not None and (forced := f.rule(body)) is not None:
                outcome = forced
            elif self._script:
                outcome = self._script.pop(0)
            else:
                u, edge, outcome = self._rng.random(), 0.0, "ok"
                for name, rate in rates:
                    edge += rate
                    if u < edge:
                        outcome = name
                        break
            self.stats[outcome] += 1
            return outcome, self._count

    def _seen_headers(self, headers: Any) -> None:
        with self._lock:
            self.authorizations.append(str(headers.get("Authorization") or ""))

    def _handle(self, body: dict[str, Any]) -> Reply:
        outcome, n = self._outcome(body)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.events.append(("start", n, outcome))
            self.started_at[n] = time.monotonic()
        try:
            return self._reply(body, outcome, n)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.events.append(("end", n, outcome))
                self.ended_at[n] = time.monotonic()

    def _reply(self, body: dict[str, Any], outcome: str, n: int) -> Reply:
        if self.latency > 0:
            self._stopping.wait(self.latency)
        if outcome in _ERRORS:
            status, msg, kind = _ERRORS[outcome]
            retry = {"Retry-After": f"{self.faults.retry_after:g}"} if status == 429 else {}
            return status, _err(msg, kind), retry
        if outcome == "drop":
            return 0, {}, {}
        if outcome == "html":  # a proxy's or web UI's page where the API was expected
            return 200, "<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"}
        if outcome == "slow":  # longer than the client's timeout; the answer itself is valid
            self._stopping.wait(self.faults.slow_seconds)
        return 200, self._completion(body, outcome, n), {}

    def _value(self, body: dict[str, Any], schema: dict[str, Any], name: str,
               rng: random.Random) -> Any:
        """A schema-valid value; the test's ``structured`` hook may replace it."""
        value = example_from_schema(schema, rng)
        if self.varied_text:
            value = varied(value, rng)
        if self.structured is not None:
            value = self.structured(body, name or str(schema.get("title") or ""), value)
        return value

    def _content(self, body: dict[str, Any], rng: random.Random, digest: str) -> str:
        """Text that is valid for what the request asked for (see the module's contract)."""
        tool, fmt = _chosen_tool(body), body.get("response_format") or {}
        if tool is not None:
            return json.dumps(self._value(body, tool.get("parameters") or {},
                                          str(tool.get("name") or ""), rng))
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema") or {"type": "object"}
            return json.dumps(self._value(body, schema, str(spec.get("name") or ""), rng))
        if self.responder is not None:
            return self.responder(body)
        schema = _prompt_schema(body.get("messages") or [])
        if self.varied_text and schema is None and not fmt:
            return varied_text(rng)
        a, b = rng.sample(_WORDS, 2)
        filler = (f"This is a stub reply (ref {digest}). It talks about {a} and {b} in plain "
                  "words. Nothing here comes from a real model.")
        if fmt.get("type") == "json_object":
            return json.dumps(self._value(body, schema, "", rng) if schema else {"text": filler})
        if schema is not None:  # prompt-and-parse: answer with a fenced JSON block
            value = json.dumps(self._value(body, schema, "", rng))
            return f"Here is the answer.\n```json\n{value}\n```"
        return filler

    def _completion(self, body: dict[str, Any], outcome: str, n: int) -> dict[str, Any]:
        """An OpenAI-shaped chat.completion, with the content fault (if any) applied."""
        messages = body.get("messages") or []
        digest = hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:8]
        rng = random.Random(f"{self.faults.seed}:{n}:{digest}")
        text = self._content(body, rng, digest)
        if outcome in ("truncated", "cut_off"):  # cut_off: stopped at max_tokens, and says so
            text = text[: len(text) // 2]
        elif outcome == "invalid_json":
            text = f"Sorry, this is not JSON at all (stub ref {digest})."
        elif outcome == "empty":
            text = ""
        message: dict[str, Any] = {"role": "assistant", "content": text}
        tool = _chosen_tool(body) if outcome != "empty" else None
        if tool is not None:
            call = {"id": f"call_{digest}_{n}", "type": "function",
                    "function": {"name": tool.get("name", ""), "arguments": text}}
            message.update(content=None, tool_calls=[call])
        prompt_tokens = max(1, sum(len(_text(m.get("content"))) for m in messages) // 4)
        completion_tokens = max(1, len(text) // 4)
        return {"id": f"chatcmpl-stub-{digest}-{n}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model") or "stub-model",
                "choices": [{"index": 0, "message": message,
                             "finish_reason": ("length" if outcome == "cut_off"
                                               else "tool_calls" if tool else "stop")}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}


def dead_url() -> str:
    """An http://127.0.0.1:<port>/v1 URL with nothing listening: bind port 0, note it, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def main(argv: list[str] | None = None) -> None:
    """``python -m testing.stub_server --latency 0.2``: serve until killed.

    Prints the base URL on the first line of standard output (benchmarks run the stub in its
    own process, so its CPU time is not counted as the framework's).
    """
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reject-json-schema", action="store_true")
    parser.add_argument("--varied-text", action="store_true", help="text that never repeats")
    args = parser.parse_args(argv)
    server = StubOpenAIServer(latency=args.latency, port=args.port, varied_text=args.varied_text,
                              faults=FaultPlan(reject_json_schema=args.reject_json_schema)).start()
    print(server.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    server.stop()


if __name__ == "__main__":
    main()
