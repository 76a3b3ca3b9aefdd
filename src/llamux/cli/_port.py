"""Whether ``llamux serve`` can listen where it is told: asked before anything is printed.

The address is bound the way uvicorn binds it (IPv6 if the host has a colon, address reuse
on, so a port left in TIME_WAIT counts as free) and closed at once. What stops it is one line
that says what to do: another port (``--port``), another host, or the privileges a low port
needs. uvicorn could still lose a race for the port to another program; it then says so
itself.
"""

from __future__ import annotations

import errno
import socket

from ._output import UsageError


def check_port(host: str, port: int) -> None:
    """Raise ``UsageError`` if ``host:port`` cannot be listened on now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as error:
        raise UsageError(_why(host, port, error)) from None


def _why(host: str, port: int, error: OSError) -> str:
    where = f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use on {host} (another llamux serve, or another "
            f"program): pick another with --port, e.g. --port {port + 1 if port < 65535 else 8081}"
        )
    if error.errno == errno.EACCES:
        return (
            f"listening on {where} is not allowed for this user (ports below 1024 need "
            "privileges): pick another with --port, e.g. --port 8080"
        )
    if error.errno == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
        return (
            f"--host {host} is not an address of this machine ({error.strerror}): use "
            "127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of its addresses"
        )
    return f"cannot listen on {where} ({error.strerror or error}): try another --host or --port"
