"""The review web app: FastAPI on uvicorn, one page, a JSON API, three static files.

Safe by default:

* it binds 127.0.0.1; another address is the caller's explicit choice (``--host``), and even
  then every request needs the token;
* the token is random per start (``secrets.token_urlsafe``), printed once in the URL on the
  first line of standard output and never logged (uvicorn's access log, which would write
  the URL, is off). Opening the URL exchanges it for an HTTP-only, SameSite=Strict cookie,
  and the page drops it from the address bar; any request without it (query, header or
  cookie) gets 403, static files included;
* changes are POSTs that must carry ``X-Requested-With: caredio-review``: a page of another
  site can neither send that header without a preflight this app never answers nor the cookie;
* every model output reaches the page as JSON and is put there as text (``textContent``),
  never as HTML; the Content-Security-Policy allows this origin's script and style only, so
  even markup that got through could run nothing;
* offline: the page, its script and its style ship in the wheel (caredio/review/static/).
"""

from __future__ import annotations

import logging
import secrets
import socket
from importlib import resources
from typing import Any

from caredio.errors import UserInputError
from caredio.review.session import ReviewError, ReviewSession

log = logging.getLogger(__name__)

COOKIE = "caredio_review"
CHANGE_HEADER = "x-requested-with"
CHANGE_VALUE = "caredio-review"
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
FORBIDDEN = ("forbidden: open the URL `caredio review` printed (it carries this server's token)")


def missing_dependencies() -> str | None:
    """Why the app cannot start (its packages are an extra), or None."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return f"caredio review: needs FastAPI and uvicorn ({exc.name} is missing): pip install 'caredio[review]'"
    return None


def _static(name: str) -> bytes:
    return resources.files("caredio.review").joinpath("static", name).read_bytes()


def create_app(session: ReviewSession, token: str) -> Any:
    """The ASGI app of one session; ``token`` is required of every request."""
    from fastapi import Body, FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from jinja2 import Environment, select_autoescape

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    files = {name: _static(name) for name in STATIC}
    page = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string(
        _static("index.html").decode("utf-8"))

    def authorized(request: Request) -> bool:
        given = (request.query_params.get("token") or request.headers.get("x-review-token")
                 or request.cookies.get(COOKIE) or "")
        return secrets.compare_digest(given.encode(), token.encode())

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if not authorized(request):
            response: Any = Response(FORBIDDEN, status_code=403, media_type="text/plain")
        elif request.method not in ("GET", "HEAD") and request.headers.get(CHANGE_HEADER) != CHANGE_VALUE:
            response = Response("forbidden: changes come from the review page only", status_code=403,
                                media_type="text/plain")
        else:
            response = await call_next(request)
            if request.query_params.get("token"):  # the printed URL: its token becomes the cookie
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response

    @app.exception_handler(UserInputError)
    async def refused(_: Request, exc: UserInputError) -> Any:
        status = 404 if isinstance(exc, ReviewError) and str(exc).startswith("no sample") else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def index() -> Any:
        return HTMLResponse(page.render(run_id=session.run.run_id, reviewer=session.reviewer,
                                        run_dir=str(session.run.dir)))

    @app.get("/static/{name}")
    def static(name: str) -> Any:
        if name not in files:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(files[name], media_type=STATIC[name])

    @app.get("/api/samples")
    def listing() -> Any:
        return session.listing()

    @app.get("/api/samples/{sample_id}")
    def detail(sample_id: str) -> Any:
        return session.detail(sample_id)

    @app.post("/api/samples/{sample_id}/decision")
    def decide(sample_id: str, decision: str = Body(...), reason: str | None = Body(None)) -> Any:
        return session.decide(sample_id, decision, reason)

    @app.post("/api/samples/{sample_id}/edit")
    def edit(sample_id: str, question: str = Body(...), response: str = Body(...)) -> Any:
        return session.edit(sample_id, question, response)

    @app.post("/api/undo")
    def undo() -> Any:
        return session.undo()

    return app


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the URL is printed (so the URL's port is real)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UserInputError(f"--host: cannot resolve '{host}' ({exc.strerror})") from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as exc:
        sock.close()
        raise UserInputError(f"--host/--port: cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str, token: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def serve(app: Any, sock: socket.socket) -> None:
    """Serve until interrupted (Ctrl-C); no access log: it would write the token's URL."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
