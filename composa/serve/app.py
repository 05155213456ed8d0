"""The Starlette application of ``composa serve`` and the uvicorn server that runs it."""
import contextlib
import dataclasses
import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any, AsyncIterator, List, Tuple, Union

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import ComposaError, PredictionInputError
from ..predictor import Predictor
from .batching import Batcher

__all__ = ["ServeSettings", "create_app", "serve"]

PAGE = Path(__file__).parent / "static" / "index.html"
BATCH_KEYS = ("inputs", "texts", "instances")


@dataclasses.dataclass
class ServeSettings:
    """Where to listen, how to batch, and the limits on one request."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_body_bytes: int = 1_000_000
    max_inputs: int = 256
    graceful_timeout_s: float = 30.0


class _RequestError(Exception):
    """A request the server answers with a 4xx status and a JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(predictor: Predictor, settings: ServeSettings, *, name: str = "model") -> Starlette:
    """The application: POST /predict (batched), GET /health, GET / (the demo page)."""
    batcher = Batcher(predictor.predict, settings.max_batch_size, settings.max_wait_ms / 1000)
    page = PAGE.read_text(encoding="utf8")

    async def predict(request: Request) -> Response:
        try:
            record = json.loads(await _read_body(request, settings.max_body_bytes))
        except _RequestError as error:
            return _error(error.status, error.message)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return _error(400, f"the body is not valid JSON: {error}")
        try:
            items, batched = _parse(predictor, record, settings.max_inputs)
        except _RequestError as error:
            return _error(error.status, error.message)
        except ComposaError as error:
            return _error(422, str(error))
        try:
            answers = await batcher.submit(items)
        except ComposaError as error:
            return _error(422, f"the model could not read this input: {error}")
        return JSONResponse({"predictions": answers} if batched else answers[0])

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": name, **predictor.describe(), "batching": batcher.stats()})

    async def home(request: Request) -> Response:
        return HTMLResponse(page)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()  # uvicorn calls this after the in-flight requests are answered

    routes = [Route("/", home, methods=["GET"]), Route("/health", health, methods=["GET"]),
              Route("/predict", predict, methods=["POST"])]
    handlers = {HTTPException: _http_error, Exception: _server_error}
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is longer than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _RequestError(413, f"the body is larger than the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _RequestError(413, f"the body is larger than the limit of {limit} bytes")
    if not body:
        raise _RequestError(400, 'the body is empty; send JSON such as {"text": "..."}')
    return bytes(body)


def _parse(predictor: Predictor, record: Any, max_inputs: int) -> Tuple[List[Any], bool]:
    """The request's inputs as model items, and whether it asked for a batch."""
    if isinstance(record, dict):
        keys = [key for key in BATCH_KEYS if key in record]
        if keys:
            inputs = record[keys[0]]
            if not isinstance(inputs, list) or not inputs:
                raise _RequestError(422, f"{keys[0]!r} must be a non-empty list")
            if len(inputs) > max_inputs:
                raise _RequestError(413, f"{len(inputs)} inputs in one request; the limit is {max_inputs}")
            return [_parse_one(predictor, item, f"{keys[0]}[{i}]") for i, item in enumerate(inputs)], True
    return [_parse_one(predictor, record, "the body")], False


def _parse_one(predictor: Predictor, record: Any, where: str) -> Any:
    try:
        return predictor.parse(record)
    except (PredictionInputError, ComposaError) as error:
        raise _RequestError(422, f"{where}: {error}") from error


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    messages = {404: f"no route {request.url.path}; try GET /, GET /health or POST /predict",
                405: f"{request.method} is not allowed on {request.url.path}"}
    return _error(error.status_code, messages.get(error.status_code, str(error.detail)))


async def _server_error(request: Request, error: Exception) -> Response:
    print(f"composa serve: error answering {request.url.path}: {type(error).__name__}: {error}", file=sys.stderr)
    return _error(500, f"the server failed on this request ({type(error).__name__}); it keeps serving")


def serve(directory: Union[str, Path], settings: ServeSettings, *, trust_code: bool = False) -> None:
    """Load the run in `directory` and serve it until SIGTERM or Ctrl-C (both finish the requests in flight)."""
    predictor = Predictor.from_archive(directory, trust_code=trust_code)
    app = create_app(predictor, settings, name=str(directory))
    listener = _listen(settings.host, settings.port)
    host, port = listener.getsockname()[:2]
    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=int(settings.graceful_timeout_s))
    url_host = f"[{host}]" if ":" in host else host
    print(f"Serving {directory} ({predictor.task}, {len(predictor.labels)} labels) on http://{url_host}:{port}/ "
          f"-- batches of up to {settings.max_batch_size}, waiting at most {settings.max_wait_ms:g} ms", flush=True)
    # uvicorn re-raises the SIGTERM it handled once it has drained; a handler here makes that a clean exit (status 0).
    previous = signal.signal(signal.SIGTERM, lambda number, frame: None)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()
    print("composa serve: stopped", flush=True)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one, which the start-up line prints)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP (not create_server's 0): asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every keep-alive response waits ~40 ms for the client's delayed ACK (Nagle's algorithm).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as error:
        listener.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    return listener


