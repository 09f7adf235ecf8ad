"""Stopping: the hub's shutdown, stop(), SIGTERM and SIGINT all end the same way: new
requests are refused, those in flight answer within the grace period, the connection closes
with status 1000."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from typing import Awaitable, Callable, Optional, Set

from . import _ws
from ._workers import Workers
from .errors import LogoMeshError

log = logging.getLogger("logomesh")


class ShutdownMixin:
    """The part of :class:`logomesh.Plugin` that stops it."""

    # Set by Plugin.__init__ / Plugin._reset.
    id: str
    abandoned: bool
    _loop: Optional[asyncio.AbstractEventLoop]
    _ws: Optional[_ws.WebSocketClient]
    _grace: float
    _stopping: bool
    _ready: bool
    _stop_fut: Optional[asyncio.Future]
    _force_fut: Optional[asyncio.Future]
    _drained_fut: Optional[asyncio.Future]
    _inflight: Set[asyncio.Future]
    _pool: Optional[Workers]

    serve: Callable[..., Awaitable[None]]

    def _begin_stop(self, grace: float) -> None:
        if self._stop_fut is None:
            return
        if self._stopping:
            # A second signal: stop waiting for requests in flight.
            if self._force_fut is not None and not self._force_fut.done():
                self._force_fut.set_result(None)
            return
        self._stopping = True
        if not self._stop_fut.done():
            self._stop_fut.set_result(grace)

    def stop(self, grace: Optional[float] = None) -> None:
        """Stop as on the hub's shutdown: refuse new requests, let those in flight answer
        (within ``grace`` seconds), close the connection. Callable from any thread."""
        loop = self._loop
        if loop is None:
            return
        g = self._grace if grace is None else grace
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._begin_stop(g)
        else:
            loop.call_soon_threadsafe(self._begin_stop, g)

    async def _drain(self, grace: float) -> None:
        pool = self._pool
        if pool is not None:
            # From now on a worker's QUIET run wakes the loop, and those already ended are resolved.
            pool.wake = True
            pool.reap()
        if not self._inflight:
            return
        loop = asyncio.get_running_loop()
        self._drained_fut = loop.create_future()
        assert self._force_fut is not None
        await asyncio.wait({self._drained_fut, self._force_fut}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        if self._inflight:
            log.warning("logomesh: %d request(s) still running after the shutdown grace; closing anyway", len(self._inflight))

    def _finish(self) -> None:
        self._ready = False
        if self._pool is not None:
            self._pool.reap()  # ended runs are not abandoned ones
        self.abandoned = any(not f.done() for f in self._inflight)
        for fut in list(self._inflight):
            fut.cancel()
        if self._ws is not None and self._ws.open:
            self._ws.abort()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._loop = None
        self._ws = None

    def run(self) -> None:
        """Serve until the hub's shutdown or SIGTERM/SIGINT, then return (exit status 0).
        Exits with status 1 when the hub cannot be reached, refuses hello, or the connection
        is lost and not re-made within the reconnect window."""
        status = 0
        try:
            asyncio.run(self._main())
        except LogoMeshError as e:
            print(f"logomesh: plugin {self.id}: {e}", file=sys.stderr, flush=True)
            status = 1
        if self.abandoned:
            # A plain def handler is still running in a worker thread. Threads cannot be
            # stopped, and a daemon thread that holds the stdout lock when the interpreter
            # finalizes makes it abort: leave at once instead.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        if status:
            sys.exit(status)

    async def _main(self) -> None:
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        await self.serve()
