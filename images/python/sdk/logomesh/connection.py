"""The connection to the hub: connecting, hello, and reconnecting after a loss
(docs/protocol.md, "reconnecting")."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from . import _ws, hub_auth
from ._workers import set_result
from .errors import ConnectionLost, LogoMeshError
from .options import HELLO_TIMEOUT, RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY
from .protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, SDK, encode

log = logging.getLogger("logomesh")


class ConnectionMixin:
    """The part of :class:`logomesh.Plugin` that owns the WebSocket connection."""

    # Set by Plugin.__init__ / Plugin._reset.
    id: str
    hub_info: Any
    _loop: Optional[asyncio.AbstractEventLoop]
    _ws: Optional[_ws.WebSocketClient]
    _gen: int
    _pending: Dict[str, asyncio.Future]
    _subscribed: set
    _live: bool
    _hello_rid: Optional[str]
    _listeners: Dict[str, List[Any]]
    _methods: Dict[str, Any]
    _established: bool
    _closing: bool
    _reconnect_ms: int
    _lost_fut: Optional[asyncio.Future]
    _stop_fut: Optional[asyncio.Future]
    _online_fut: Optional[asyncio.Future]
    _max_bytes: int

    _new_id: Callable[[], str]
    _on_message: Callable[[bytearray], None]
    _subscribe_rest: Callable[[List[str]], Awaitable[None]]

    def _close_handler(self, gen: int) -> Callable[[Optional[int], str], None]:
        return lambda code, reason: self._on_close(gen, code, reason)

    def _on_close(self, gen: int, code: Optional[int], reason: str) -> None:
        if gen != self._gen:
            return  # an older connection, already given up
        if self._established and self._reconnect_ms > 0 or self._online_fut is not None:
            lost: LogoMeshError = ConnectionLost(code, reason)
        else:
            lost = LogoMeshError("LM_CONTROLLER_UNAVAILABLE", f"the connection to the hub closed (code {code})",
                                 {"code": code, "reason": reason})
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(lost)
        self._pending.clear()
        self._subscribed.clear()
        self._live = False
        if not self._closing and self._lost_fut is not None and not self._lost_fut.done():
            self._lost_fut.set_result((code, reason))

    def _open(self, path: str, timeout: float) -> Awaitable[_ws.WebSocketClient]:
        """Connect as a new connection generation. Until the hub announces its maximum
        message size, the SDK takes the largest one an operator may configure; a frame over
        that is not even read (the connection closes with status 1009)."""
        self._gen += 1
        self._max_bytes = MAX_MESSAGE_BYTES
        self._lost_fut = asyncio.get_running_loop().create_future()
        if hub_auth.is_url(path):
            return self._open_tcp(path, timeout, self._close_handler(self._gen))
        return _ws.connect(path, self._on_message, self._close_handler(self._gen), timeout=timeout,
                           max_size=MAX_MESSAGE_BYTES)

    async def _open_tcp(self, url: str, timeout: float, on_close: Callable[[Optional[int], str], None]) -> _ws.WebSocketClient:
        """A hub across nodes: over TCP, with a fresh handshake (the key read now, a new nonce)."""
        hub = hub_auth.HubUrl(url)
        return await _ws.connect_tcp(hub.host, hub.port, self._on_message, on_close, host_header=hub.host_header(),
                                     resource=hub.resource, timeout=timeout, max_size=MAX_MESSAGE_BYTES,
                                     headers=hub_auth.auth_headers(self.id), ssl_context=hub.ssl_context())

    def _refused(self, e: _ws.HandshakeError) -> str:
        """Say on stderr why a hub across nodes refused the connection (never the key or the header)."""
        why = f"{e.code or 'HTTP'} ({e.status})"
        if why != getattr(self, "_last_refusal", None):
            self._last_refusal = why
            log.warning("logomesh: plugin %s: the hub refused the connection: %s; trying again", self.id, why)
        return why

    async def _connect(self, path: str, timeout: float) -> Optional[_ws.WebSocketClient]:
        loop = asyncio.get_running_loop()
        assert self._stop_fut is not None
        tcp = hub_auth.is_url(path)
        # Across nodes the hub may be moving (its Pod rescheduled): wait for it as long as for a reconnection.
        deadline = loop.time() + (max(timeout, self._reconnect_ms / 1000) if tcp else timeout)
        delay = 0.01
        while True:
            try:
                return await self._open(path, max(0.1, deadline - loop.time()))
            except (FileNotFoundError, ConnectionRefusedError) as e:
                if loop.time() >= deadline:
                    raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE",
                                        f"no hub answers at {path}: {e.strerror or e}", {"socket": path}) from None
            except _ws.HandshakeError as e:
                # A hub across nodes that does not know the plugin yet (or a rotated key) answers 401: try again, never in a tight loop.
                if not tcp or e.status not in (401, 429, 503) or loop.time() >= deadline:
                    raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE",
                                        f"connecting to the hub at {path} failed: {e}", {"socket": path, "status": e.status, "refusal": e.code}) from None
                self._refused(e)
                delay = max(delay, 0.5)
            except (OSError, asyncio.TimeoutError) as e:
                if not tcp or loop.time() >= deadline:
                    raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE",
                                        f"connecting to the hub at {path} failed: {e or type(e).__name__}", {"socket": path}) from None
            # The socket may not exist yet while the controller starts: try again shortly.
            await asyncio.wait({self._stop_fut}, timeout=min(delay, max(0.0, deadline - loop.time())))
            if self._stop_fut.done():
                return None
            delay = min(delay * 2, 2.0 if tcp else 0.25)

    def _send_hello(self, ws: _ws.WebSocketClient) -> Tuple[asyncio.Future, List[str]]:
        """Write hello with the methods, and every topic registered so far as its
        subscriptions (the hub subscribes them before it answers, so no event published once
        the plugin is ready is missed). The answer's future, and the topics sent."""
        assert self._loop is not None
        rid = self._new_id()
        hello = self._loop.create_future()
        self._pending[rid] = hello
        hello.add_done_callback(lambda _: self._pending.pop(rid, None))
        topics = list(self._listeners)
        self._hello_rid = rid
        ws.send_text(encode({"type": "hello", "id": rid, "protocol": PROTOCOL_VERSION, "sdk": SDK, "methods": list(self._methods),
                             "subscriptions": topics}, self._max_bytes))
        return hello, topics

    def _accepted(self, info: Any) -> None:
        """The hub accepted hello: keep what it said, and its maximum message size (larger
        messages are refused either way)."""
        self.hub_info = info
        announced = info.get("maxMessageBytes") if isinstance(info, dict) else None
        if type(announced) is int and 0 < announced <= MAX_MESSAGE_BYTES:
            self._max_bytes = announced

    async def _reconnect(self, path: str, code: Optional[int], reason: str) -> bool:
        """After the connection is lost: connect again with backoff for up to the reconnect
        window, say hello with the same methods and every topic as its subscriptions. True once
        serving again; False when stopped meanwhile. Raises LM_CONTROLLER_UNAVAILABLE when
        the window passes, and the hub's error when it refuses hello."""
        loop = asyncio.get_running_loop()
        assert self._stop_fut is not None
        self._ws = None
        online = self._online_fut = loop.create_future()
        back = False
        window = self._reconnect_ms / 1000
        lost_at = loop.time()
        deadline = lost_at + window
        log.warning("logomesh: plugin %s: hub connection lost (code %s%s); reconnecting for up to %d ms",
                    self.id, code, f": {reason}" if reason else "", self._reconnect_ms)
        delay = RECONNECT_FIRST_DELAY
        last = "no attempt"
        attempts = 0
        try:
            while True:
                await asyncio.wait({self._stop_fut}, timeout=max(0.0, min(delay, deadline - loop.time())))
                if self._stop_fut.done():
                    return False
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                attempts += 1
                ws = None
                try:
                    ws = await self._until_stopped(self._open(path, max(0.1, deadline - loop.time())))
                    if ws is None:
                        return False
                    hello, topics = self._send_hello(ws)
                    wait = min(HELLO_TIMEOUT, max(1.0, deadline - loop.time()))
                    done, _ = await asyncio.wait({hello, self._stop_fut}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                    if self._stop_fut.done():
                        hello.cancel()
                        ws.abort()
                        return False
                    if hello not in done:
                        hello.cancel()
                        raise asyncio.TimeoutError(f"no answer to hello within {wait:g} s")
                    self._accepted(hello.result())  # a refusal (LogoMeshError) ends serve()
                except ConnectionLost as e:
                    last = f"the connection closed during hello (code {e.details['code']})"
                    ws = None
                except (OSError, _ws.HandshakeError, asyncio.TimeoutError) as e:
                    last = self._refused(e) if isinstance(e, _ws.HandshakeError) else f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"
                    if ws is not None:
                        ws.abort()
                    ws = None
                except LogoMeshError:
                    if ws is not None:
                        ws.abort()
                    raise
                if ws is not None:
                    break
                if loop.time() >= deadline:
                    raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE",
                                        f"the hub connection was lost and not re-made within {self._reconnect_ms} ms "
                                        f"({attempts} attempt(s) at {path}; last: {last})",
                                        {"socket": path, "reconnectMs": self._reconnect_ms, "code": code})
            self._ws = ws
            self._online_fut = None  # subscribing and sending work again
            await self._subscribe_rest(topics)
            log.warning("logomesh: plugin %s: reconnected to the hub after %d ms", self.id, round((loop.time() - lost_at) * 1000))
            back = True
            return True
        finally:
            if self._online_fut is online:
                self._online_fut = None
            # Calls waiting for the connection go on (or learn that serve() is over).
            set_result(online, back)

    async def _until_stopped(self, aw: Awaitable[Any]) -> Any:
        """Await ``aw`` unless stop() comes first (then None)."""
        assert self._stop_fut is not None
        task = asyncio.ensure_future(aw)
        await asyncio.wait({task, self._stop_fut}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is not None or t.result().abort())
        return None
