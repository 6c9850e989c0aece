"""Run the service under uvicorn on a socket bound before the first log line, so ``--port 0`` works:
the line ``embedkit serve: listening on http://HOST:PORT`` tells scripts and tests the port taken."""
from __future__ import annotations

import ipaddress
import logging
import socket
import sys

from embedkit.errors import ConfigError
from embedkit.serve.config import ServeConfig


def run(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    import uvicorn

    from embedkit.serve.app import create_app
    from embedkit.serve.service import Service

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("embedkit serve: %(levelname)s: %(message)s"))
    logger = logging.getLogger("embedkit.serve")
    logger.addHandler(handler)
    logger.setLevel(log_level.upper())
    if not config.writes_enabled:
        print("embedkit serve: no --token-file: writes (POST/DELETE /documents) are refused", file=sys.stderr)
    elif not _loopback(host):
        print(f"embedkit serve: warning: listening on {host} without TLS: the bearer token travels in clear "
              "text; put a TLS proxy in front", file=sys.stderr)
    sock = _bind(host, port)
    service = Service.open(config)
    app = create_app(service)
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"embedkit serve: listening on http://{_url_host(bound_host)}:{bound_port} "
          f"({', '.join(f'{n}: {s.count()} rows' for n, s in service.indexes.items())})", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=30))
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(2048)
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
