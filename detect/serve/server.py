"""``detect serve``: the app on uvicorn, on a socket bound first (so ``port: 0`` gets a free port, printed).

Ctrl-C or SIGTERM stops it cleanly: uvicorn stops accepting, running requests finish, the app's
shutdown checkpoints running jobs. The lines printed once the models are loaded::

    detect serve: ready at http://127.0.0.1:8000/  (models: digits-frcnn-r18; API docs at /docs)
    try: curl -F file=@image.jpg 'http://127.0.0.1:8000/v1/detect?conf=0.3'
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from detect.serve.app import create_app
from detect.serve.models import ModelStore
from detect.serve.settings import ServiceSettings


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` is one).

    Raises:
        OSError: the address is taken or cannot be bound (the message says which).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host == "0.0.0.0" else host)
    return f"http://{shown}:{port}/"


def serve(settings: ServiceSettings) -> None:
    """Load the models, then run the service until Ctrl-C or SIGTERM.

    Raises:
        OSError: the address cannot be listened on.
        FileNotFoundError, ValueError: no model folder, no loadable model, the default model missing.
    """
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = bind(settings.host, settings.port)
    try:
        print(f"detect serve: loading the models of {settings.model_dir} ...", file=sys.stderr, flush=True)
        models = ModelStore(settings.model_dir, settings.default_model, settings.device)
        app = create_app(settings, models)
        app.state.url = url_of(sock)
        config = uvicorn.Config(app, log_level=settings.log_level, access_log=settings.log_level == "debug",
                                timeout_graceful_shutdown=30)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
