"""The processes of ``llamux serve --workers N`` and the sockets they listen on.

uvicorn's own supervisor gives every worker the one socket it bound, so a burst of
connections opened at once (a client's pool, a batch job's 16) is accepted by whichever
worker wakes first, all of it (asyncio accepts until the queue is empty), and with
keep-alive the connections stay there while the other workers idle. Here each worker has a
socket of its own on the same port (``SO_REUSEPORT``, on Linux), so the kernel spreads new
connections over the workers evenly; elsewhere they share one, as with uvicorn. The parent
keeps every socket open: a worker that dies is replaced on its socket, and the connections
queued there wait for the replacement instead of being refused.

The sockets name their protocol (``IPPROTO_TCP``): asyncio turns Nagle's algorithm off
(``TCP_NODELAY``) only on connections whose socket says TCP, and uvicorn's own (protocol 0)
left every answer of every worker waiting on a delayed ACK, 40 ms each (uvicorn issue
#3149, open as of uvicorn 0.54).

Signals, as uvicorn's supervisor has them: SIGINT and SIGTERM stop every worker gracefully,
then the parent. SIGHUP does the same (the terminal closed) instead of uvicorn's rolling
restart; SIGTTIN and SIGTTOU (a worker more or fewer) are declined with a line saying so.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn.config import Config

STARTUP_FAILURE = 3
"""The exit code of a worker that could not start (uvicorn's ``STARTUP_FAILURE``): the
supervisor then stops the others instead of restarting it."""

log = logging.getLogger("uvicorn.error")


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to ``host:port`` (a port of 0: one chosen for all), one per
    worker where the kernel balances them (Linux), else one socket ``count`` times.
    ``SystemExit(3)`` when the address cannot be bound, with the reason logged."""
    spread = count > 1 and sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
    first = _bound(host, port, spread)
    if not spread:
        return [first] * count
    sockets = [first]
    try:
        for _ in range(count - 1):
            sockets.append(_bound(host, first.getsockname()[1], spread))
    except SystemExit:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bound(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        log.error("cannot listen on %s:%d: %s", host, port, error)
        sys.exit(STARTUP_FAILURE)
    sock.set_inheritable(True)
    return sock


def supervise(config: Config, sockets: list[socket.socket]) -> bool:
    """Run one worker per socket of ``sockets`` until a signal stops them all; whether they
    all started (False: one could not, so all were stopped)."""
    from uvicorn.supervisors import Multiprocess
    from uvicorn.supervisors.multiprocess import Process

    class Supervisor(Multiprocess):
        """uvicorn's supervisor, but each worker, and its replacement, on its own socket."""

        def init_processes(self) -> None:
            for sock in sockets:
                process = Process(self.config, [sock])
                process.start()
                self.processes.append(process)

        def keep_subprocess_alive(self) -> None:
            if self.should_exit.is_set():
                return
            for index, process in enumerate(self.processes):
                if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                    continue
                process.kill()  # hung, if not dead
                process.join()
                if process.exitcode == STARTUP_FAILURE:
                    log.error("Child process [%s] failed to start, stopping them all", process.pid)
                    self.should_exit.set()
                    return
                if self.should_exit.is_set():
                    return
                log.warning(
                    "Child process [%s] died (exit code %s); starting another in its place",
                    process.pid,
                    process.exitcode,
                )
                self.processes[index] = Process(self.config, [sockets[index]])
                self.processes[index].start()

        def handle_hup(self) -> None:
            log.info("Received SIGHUP, exiting.")
            self.should_exit.set()

        def handle_ttin(self) -> None:
            log.warning(
                "Received SIGTTIN or SIGTTOU: the workers are fixed; restart with --workers"
            )

        def handle_ttou(self) -> None:
            self.handle_ttin()

    supervisor = Supervisor(config, sockets=sockets[:1])
    supervisor.run()
    return all(process.exitcode != STARTUP_FAILURE for process in supervisor.processes)
