"""Outbound messages: calls to other plugins and the host, events and broadcasts."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple

from . import _ws
from .errors import LogoMeshError
from .options import DEFAULT_TIMEOUT, LOCAL_TIMEOUT_MARGIN
from .protocol import MAX_CALL_TIMEOUT_MS, NAME, TARGET, TOPIC, EncodeError, encode
from .segments import pack, segments_dir

# How long an event or broadcast sent with ack waits for the hub's answer, in seconds.
ACK_TIMEOUT = 10.0


class CallsMixin:
    """The part of :class:`logomesh.Plugin` that sends: ``call``, ``emit``, ``broadcast``
    and their ``*_sync`` forms for plain ``def`` handlers."""

    # Set by Plugin.__init__ / Plugin._reset.
    id: str
    _loop: Optional[asyncio.AbstractEventLoop]
    _ws: Optional[_ws.WebSocketClient]
    _online_fut: Optional[asyncio.Future]
    _pending: Dict[str, asyncio.Future]
    _targets: Dict[str, Tuple[str, str]]
    _ids: Iterator[int]
    _max_bytes: int

    def _new_id(self) -> str:
        # next() on a count is atomic under the GIL: worker threads take ids too (dispatch.py).
        return str(next(self._ids))

    def _connected_ws(self) -> _ws.WebSocketClient:
        ws = self._ws
        if ws is None or not ws.open:
            if self._online_fut is not None:
                raise LogoMeshError("LM_PLUGIN_UNAVAILABLE", "hub connection lost; reconnecting")
            raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE",
                                f"plugin {self.id} is not connected to the hub (use the SDK while run() serves)")
        if self._loop is not asyncio.get_running_loop():
            raise RuntimeError("the plugin's coroutines run on its own event loop; from a plain def handler use "
                               "call_sync(), emit_sync() or broadcast_sync()")
        return ws

    def _frame(self, msg: Dict[str, Any], what: str) -> bytes:
        """A message to send, encoded; LM_INVALID_ARGUMENT (or LM_MESSAGE_TOO_LARGE) when
        its data cannot go on the wire."""
        try:
            return encode(msg, self._max_bytes, self._binary_frames())
        except EncodeError as e:
            raise LogoMeshError("LM_MESSAGE_TOO_LARGE" if e.too_large else "LM_INVALID_ARGUMENT",
                                f"the data of {what} {e.reason}") from None

    def _binary_frames(self) -> bool:
        """Does the current connection send msgpack frames (agreed in hello's answer)?"""
        ws = self._ws
        return ws is not None and ws.binary

    def _with_segments(self, msg: Dict[str, Any], key: str = "data") -> Dict[str, Any]:
        """Segments anywhere in the message's data go as handles, listed in ``segments`` for the hub to check."""
        if segments_dir() is not None and key in msg:
            msg[key], refs = pack(msg[key])
            if refs:
                msg["segments"] = refs
        return msg

    def _target(self, method: str) -> Tuple[str, str]:
        t = self._targets.get(method)
        if t is not None:
            return t
        plugin, dot, name = method.rpartition(".") if isinstance(method, str) else ("", "", "")
        if not dot:
            plugin = "host"
        if not isinstance(method, str) or not NAME.match(name) or (dot and not TARGET.match(plugin)):
            raise LogoMeshError("LM_INVALID_ARGUMENT",
                                f"{method!r} is not 'plugin-id.method' or a host method name", {"method": method})
        t = (plugin, name)
        if len(self._targets) < 1024:
            self._targets[method] = t
        return t

    async def _await_online(self, timeout: float) -> float:
        """While reconnecting, wait (at most ``timeout`` seconds) for the connection to be
        back; return the time left."""
        loop = self._loop
        if self._online_fut is None or loop is not asyncio.get_running_loop():
            return timeout
        deadline = loop.time() + timeout
        while self._online_fut is not None:
            fut = self._online_fut
            left = deadline - loop.time()
            if left <= 0:
                raise LogoMeshError("LM_PLUGIN_UNAVAILABLE",
                                    f"hub connection lost, and not back within the call's timeout ({timeout:g} s)")
            done, _ = await asyncio.wait({fut}, timeout=left)
            if fut in done and not fut.result():
                break  # serve() ended: _connected_ws() says so
        return max(0.001, deadline - loop.time())

    async def call(self, method: str, data: Any = None, timeout: Optional[float] = DEFAULT_TIMEOUT) -> Any:
        """Call ``plugin-id.method`` (or a host method, named without a dot) and return its
        result. Raises :class:`LogoMeshError` with the callee's or the hub's code. While the
        SDK reconnects to the hub, the call waits for the connection within its timeout."""
        target, name = self._target(method)
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        timeout = min(timeout, MAX_CALL_TIMEOUT_MS / 1000)
        if self._online_fut is not None:
            timeout = await self._await_online(timeout)
        ws = self._connected_ws()
        rid = self._new_id()
        msg = {"type": "request", "id": rid, "to": [target], "method": name, "data": data,
               "timeout": max(1, round(timeout * 1000))}
        frame = self._frame(self._with_segments(msg), f"a call to {method}")
        loop = self._loop
        assert loop is not None
        fut = loop.create_future()
        self._pending[rid] = fut
        ws.send_text(frame)
        timer = loop.call_later(timeout + LOCAL_TIMEOUT_MARGIN, self._expire, rid, method, timeout)
        try:
            if ws.writing_paused:
                await ws.drain()
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(rid, None)

    def _expire(self, rid: str, method: str, timeout: float) -> None:
        fut = self._pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(LogoMeshError("LM_TIMEOUT", f"no response to {method} within {timeout:g} s",
                                            {"method": method, "timeoutMs": round(timeout * 1000)}))

    async def _send_async(self, msg: Dict[str, Any], what: str) -> None:
        ws = self._connected_ws()
        frame = self._frame(msg, what)
        ws.send_text(frame)
        if ws.writing_paused:
            await ws.drain()

    async def emit(self, topic: str, data: Any = None, *, to: Optional[List[str]] = None, ack: bool = False) -> None:
        """Send an event: to every subscriber of ``topic``, or only to the plugins in ``to``.
        Needs ``coordination.messaging: true`` in the manifest. A refusal from the hub is
        logged; with ``ack=True`` the hub answers, and a refusal raises :class:`LogoMeshError`
        with its code (LM_PERMISSION_DENIED naming the manifest field)."""
        if not isinstance(topic, str) or "*" in topic or not TOPIC.match(topic):
            raise ValueError(f"topic {topic!r} must be a dotted name without wildcards")
        msg: Dict[str, Any] = {"type": "event", "id": self._new_id(), "topic": topic, "data": data}
        if to is not None:
            msg["to"] = list(to)
        msg = self._with_segments(msg)
        await (self._send_acked(msg, f"event {topic}") if ack else self._send_async(msg, f"event {topic}"))

    async def broadcast(self, topic: Optional[str] = None, data: Any = None, *, ack: bool = False) -> None:
        """Send a broadcast to every other plugin and host client (with a topic: to its
        subscribers). Needs ``coordination.messaging: true`` in the manifest. ``ack``: as for
        :meth:`emit`."""
        msg: Dict[str, Any] = {"type": "broadcast", "id": self._new_id(), "data": data}
        if topic is not None:
            if not isinstance(topic, str) or "*" in topic or not TOPIC.match(topic):
                raise ValueError(f"topic {topic!r} must be a dotted name without wildcards")
            msg["topic"] = topic
        await (self._send_acked(msg, "a broadcast") if ack else self._send_async(msg, "a broadcast"))

    async def _send_acked(self, msg: Dict[str, Any], what: str) -> None:
        """Send with ``ack``: wait for the hub's answer (published, or its refusal)."""
        ws = self._connected_ws()
        frame = self._frame({**msg, "ack": True}, what)
        loop = self._loop
        assert loop is not None
        fut = loop.create_future()
        self._pending[msg["id"]] = fut
        ws.send_text(frame)
        timer = loop.call_later(ACK_TIMEOUT, self._expire, msg["id"], what, ACK_TIMEOUT)
        try:
            if ws.writing_paused:
                await ws.drain()
            await fut
        finally:
            timer.cancel()
            self._pending.pop(msg["id"], None)

    def _from_thread(self, coro_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        loop = self._loop
        if loop is None:
            raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE", f"plugin {self.id} is not connected to the hub")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("a *_sync method would block the event loop; in an async handler use 'await plugin.call(...)'")
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), loop).result()

    def call_sync(self, method: str, data: Any = None, timeout: Optional[float] = DEFAULT_TIMEOUT) -> Any:
        """``call`` for plain ``def`` handlers (which run in worker threads): blocks the thread."""
        return self._from_thread(self.call, method, data, timeout)

    def emit_sync(self, topic: str, data: Any = None, *, to: Optional[List[str]] = None, ack: bool = False) -> None:
        """``emit`` for plain ``def`` handlers."""
        return self._from_thread(lambda: self.emit(topic, data, to=to, ack=ack))

    def broadcast_sync(self, topic: Optional[str] = None, data: Any = None, *, ack: bool = False) -> None:
        """``broadcast`` for plain ``def`` handlers."""
        return self._from_thread(lambda: self.broadcast(topic, data, ack=ack))
