"""Start the API (``make serve``): ``python -m serving.api.serve [--host H] [--port P]``.

The one place that knows where the server listens, so the one place that can refuse an unsafe start: without
``API_KEYS_FILE`` the API has no authentication and may listen only on a loopback address. ``HOST`` / ``PORT``
(default 127.0.0.1:8000); with ``API_TLS_CERTFILE`` and ``API_TLS_KEYFILE`` it serves HTTPS.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from dataclasses import replace

from settings import Settings, configure_logging

log = logging.getLogger("serving.api.serve")


class UnsafeStart(ValueError):
    """A configuration the server refuses to start with (the message says why and what to set)."""


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (``0.0.0.0``, ``::`` and empty are not)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_start(settings: Settings) -> str:
    """Raise :class:`UnsafeStart` for a configuration that must not serve; else the line saying how it serves."""
    if settings.api_keys_file is None:
        if not is_loopback(settings.api_host):
            raise UnsafeStart(f"Refusing to listen on {settings.api_host!r} without API keys: set API_KEYS_FILE "
                              "(add a key with `make api-key SCOPE=read NAME=...`) or HOST=127.0.0.1.")
        access = "OPEN: no API_KEYS_FILE, so no authentication; listening on loopback only"
    else:
        if not settings.api_keys_file.is_file():
            raise UnsafeStart(f"API_KEYS_FILE={settings.api_keys_file} does not exist: add a key first "
                              "(`make api-key SCOPE=read NAME=...`).")
        access = f"API keys from {settings.api_keys_file}"
    tls = (settings.api_tls_certfile, settings.api_tls_keyfile)
    if any(tls) and not all(tls):
        raise UnsafeStart("Set both API_TLS_CERTFILE and API_TLS_KEYFILE for HTTPS (or neither).")
    for name, path in zip(("API_TLS_CERTFILE", "API_TLS_KEYFILE"), tls):
        if path is not None and not path.is_file():
            raise UnsafeStart(f"{name}={path} does not exist.")
    scheme = "https" if all(tls) else "http"
    return f"Forecast API at {scheme}://{settings.api_host}:{settings.api_port} ({access})."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.api.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", help="address to listen on (default $HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default $PORT, else 8000)")
    args = parser.parse_args(argv)
    configure_logging()
    settings = Settings.from_env()
    settings = replace(settings, api_host=args.host or settings.api_host, api_port=args.port or settings.api_port)
    try:
        message = check_start(settings)
    except UnsafeStart as exc:
        log.error("%s", exc)
        return 2
    log.warning("%s", message) if settings.api_keys_file is None else log.info("%s", message)

    import uvicorn

    uvicorn.run("serving.api:app", host=settings.api_host, port=settings.api_port,
                ssl_certfile=settings.api_tls_certfile, ssl_keyfile=settings.api_tls_keyfile,
                server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
