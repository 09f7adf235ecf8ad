"""The plugin side of the LogoMesh hub protocol (docs/protocol.md, version 1)."""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import queue
import re
import signal
import sys
import threading
from typing import Any, Awaitable, Callable, Dict, List, NamedTuple, Optional, Set, Tuple, Union

from . import _ws
from .errors import LogoMeshError

__all__ = ["Plugin", "Event", "SDK", "PROTOCOL_VERSION", "DEFAULT_SOCKET"]

VERSION = "0.1.0"
SDK = f"python/{VERSION}"
PROTOCOL_VERSION = 1
DEFAULT_SOCKET = "/run/logomesh/hub.sock"
DEFAULT_TIMEOUT = 30.0
# The hub answers a call that timed out with LM_TIMEOUT; the SDK's own timer is only a
# safety net for a hub that never answers, so it fires a little later.
_LOCAL_TIMEOUT_MARGIN = 0.5
_HELLO_TIMEOUT = 30.0
_SUBSCRIBE_TIMEOUT = 10.0
# After an established connection is lost: how long to keep trying to reconnect (ms;
# LOGOMESH_RECONNECT_MS, 0 = never), and the backoff between attempts (seconds).
DEFAULT_RECONNECT_MS = 60_000
_RECONNECT_FIRST_DELAY = 0.1
_RECONNECT_MAX_DELAY = 2.0

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TARGET = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TOPIC = re.compile(r"^(?:\*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$")

log = logging.getLogger("logomesh")

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(obj: Any) -> bytes:
    return _encoder.encode(obj).encode("utf-8")


class Event(NamedTuple):
    """An event or broadcast as a handler registered with ``on`` may receive it."""

    topic: Optional[str]
    data: Any
    sender: Optional[str]
    kind: str  # "event" or "broadcast"
    id: str
    timestamp: Optional[int]


class _BadArguments(Exception):
    pass


class _ConnectionLost(LogoMeshError):
    """What calls waiting for an answer get when the hub connection is lost while the SDK
    will reconnect: LM_PLUGIN_UNAVAILABLE."""

    def __init__(self, code: Optional[int], reason: str) -> None:
        super().__init__("LM_PLUGIN_UNAVAILABLE", "hub connection lost", {"code": code, "reason": reason})


def _reconnect_ms_from_env() -> int:
    raw = os.environ.get("LOGOMESH_RECONNECT_MS", "").strip()
    if not raw:
        return DEFAULT_RECONNECT_MS
    try:
        value = int(raw)
        if value < 0:
            raise ValueError(raw)
    except ValueError:
        log.warning("logomesh: LOGOMESH_RECONNECT_MS=%r is not a number of milliseconds >= 0; using %d", raw, DEFAULT_RECONNECT_MS)
        return DEFAULT_RECONNECT_MS
    return value


def _invoke(fn: Callable, data: Any) -> Any:
    """Call a handler with a request's data: an object as keyword arguments, null as
    nothing, anything else as one positional argument."""
    try:
        if type(data) is dict:
            return fn(**data)
        if data is None:
            return fn()
        return fn(data)
    except TypeError as e:
        # Raised by the call itself (not from inside the handler): the arguments do not fit.
        if e.__traceback__ is not None and e.__traceback__.tb_next is None:
            raise _BadArguments(str(e)) from None
        raise


def _is_async(fn: Callable) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _positional_arity(fn: Callable) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    n = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


def topic_matches(pattern: str, topic: str) -> bool:
    """Does a subscription pattern (``a.b``, ``a.*``, ``*``) match a topic?"""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return topic.startswith(pattern[:-1])
    return pattern == topic


class _Workers:
    """A small pool of daemon threads for plain ``def`` handlers. Lighter than
    concurrent.futures (no Future per task, results posted straight to the loop), and its
    threads never hold up the interpreter's exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_workers: int) -> None:
        self._loop = loop
        self._max = max(1, max_workers)
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: List[threading.Thread] = []

    def submit(self, fn: Callable, *args: Any) -> asyncio.Future:
        fut = self._loop.create_future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self._max:
                t = threading.Thread(target=self._work, name=f"logomesh-{len(self._threads) + 1}", daemon=True)
                self._threads.append(t)
                t.start()
        self._queue.put((fut, fn, args))
        return fut

    def _work(self) -> None:
        q = self._queue
        post = self._loop.call_soon_threadsafe
        while True:
            item = q.get()
            if item is None:
                return
            fut, fn, args = item
            try:
                result = fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                try:
                    post(_set_exception, fut, e)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    return
            else:
                try:
                    post(_set_result, fut, result)
                except RuntimeError:
                    return
            del item, fut, fn, args
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


def _set_result(fut: asyncio.Future, result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class _Method:
    __slots__ = ("name", "fn", "is_async")

    def __init__(self, name: str, fn: Callable) -> None:
        self.name = name
        self.fn = fn
        self.is_async = _is_async(fn)


class _Listener:
    __slots__ = ("fn", "is_async", "with_event")

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.is_async = _is_async(fn)
        self.with_event = _positional_arity(fn) >= 2


def _call_listener(listener: _Listener, data: Any, event: Event) -> Any:
    return listener.fn(data, event) if listener.with_event else listener.fn(data)


class Plugin:
    """A LogoMesh plugin: register methods and event handlers, then ``run()``.

    ``plugin_id`` and ``socket_path`` default to ``LOGOMESH_PLUGIN_ID`` and
    ``LOGOMESH_HUB_SOCKET``, which the controller sets. ``max_workers`` bounds the thread
    pool that runs plain ``def`` handlers. ``grace`` is how long (seconds) requests in
    flight may take to finish after SIGTERM or SIGINT; a hub ``shutdown`` names its own.
    ``reconnect_ms`` is how long to keep trying to reconnect after an established
    connection is lost (default ``LOGOMESH_RECONNECT_MS``, else 60000; 0 never reconnects).
    """

    def __init__(self, plugin_id: Optional[str] = None, *, socket_path: Optional[str] = None,
                 max_workers: int = 8, grace: float = 5.0, reconnect_ms: Optional[int] = None) -> None:
        self.id = plugin_id or os.environ.get("LOGOMESH_PLUGIN_ID") or "plugin"
        self._socket_path = socket_path
        if reconnect_ms is not None and (not isinstance(reconnect_ms, int) or reconnect_ms < 0):
            raise ValueError("reconnect_ms must be an int >= 0")
        self._reconnect_option = reconnect_ms
        self._max_workers = max_workers
        self._grace = grace
        self._methods: Dict[str, _Method] = {}
        self._listeners: Dict[str, List[_Listener]] = {}
        self._pool: Optional[_Workers] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._ws: Optional[_ws.WebSocketClient] = None
        self._ready_waiters: List[asyncio.Future] = []
        self._reset()

    def _reset(self) -> None:
        self._loop = None
        self._ws = None
        self._pending: Dict[str, asyncio.Future] = {}
        self._inflight: Set[asyncio.Future] = set()
        self._next_id = 0
        self._targets: Dict[str, Tuple[str, str]] = {}
        self._subscribed: Set[str] = set()
        self._stopping = False
        self._closing = False
        self._stop_fut: Optional[asyncio.Future] = None
        # One per connection: set with (close code, reason) when that connection is lost.
        self._lost_fut: Optional[asyncio.Future] = None
        # Which connection is current: a response is only sent on the connection its
        # request came in on, and a late close of an older connection is ignored.
        self._gen = 0
        self._established = False
        self._reconnect_ms = 0
        # Set while reconnecting: resolves True once the hub has accepted hello again and
        # the subscriptions are re-made, False when serve() ends instead.
        self._online_fut: Optional[asyncio.Future] = None
        self._force_fut: Optional[asyncio.Future] = None
        self._drained_fut: Optional[asyncio.Future] = None
        self._ready = False
        self.abandoned = False
        self.hub_info: Any = None

    # -- registration -------------------------------------------------------------------
    def method(self, name_or_fn: Union[str, Callable, None] = None, fn: Optional[Callable] = None, *,
               name: Optional[str] = None) -> Any:
        """Expose a method. As a decorator: ``@plugin.method`` (the function's name) or
        ``@plugin.method("name")``; or directly: ``plugin.method("name", fn)``.

        The handler may be ``def`` (runs in a worker thread) or ``async def`` (runs on the
        event loop). An object ``data`` is passed as keyword arguments, ``null`` as no
        argument, anything else as one positional argument. It returns a JSON value."""
        if callable(name_or_fn):
            return self._register_method(name or name_or_fn.__name__, name_or_fn)
        method_name = name_or_fn if isinstance(name_or_fn, str) else name
        if fn is not None:
            return self._register_method(method_name or fn.__name__, fn)

        def decorator(f: Callable) -> Callable:
            return self._register_method(method_name or f.__name__, f)

        return decorator

    def _register_method(self, name: str, fn: Callable) -> Callable:
        if not _NAME.match(name):
            raise ValueError(f"method name {name!r} must be a letter or _, then letters, digits or _ (at most 64)")
        if self._loop is not None:
            raise RuntimeError(f"method {name!r}: register methods before run(); the hub learns them from hello")
        if name in self._methods:
            raise ValueError(f"method {name!r} is registered twice")
        self._methods[name] = _Method(name, fn)
        return fn

    @property
    def methods(self) -> List[str]:
        return list(self._methods)

    def on(self, topic: str, handler: Optional[Callable] = None) -> Any:
        """Subscribe to a topic (``a.b``, ``a.*`` or ``*``) and call ``handler(data)`` (or
        ``handler(data, event)`` when it takes two positional arguments) for every event or
        broadcast that matches. ``*`` handlers also receive broadcasts without a topic.
        Usable as ``@plugin.on("topic")``, before ``run()`` or while serving."""
        if not isinstance(topic, str) or not _TOPIC.match(topic):
            raise ValueError(f"topic {topic!r} must be a dotted name, optionally ending in .* (or * for all)")

        def register(fn: Callable) -> Callable:
            listeners = self._listeners.setdefault(topic, [])
            listeners.append(_Listener(fn))
            loop = self._loop
            if len(listeners) == 1 and loop is not None and self._ready:
                # While reconnecting this does nothing: every topic is subscribed again
                # once the hub accepts hello.
                loop.call_soon_threadsafe(lambda: self._track(loop.create_task(self._subscribe(topic))))
            return fn

        return register(handler) if handler is not None else register

    # -- outgoing -----------------------------------------------------------------------
    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

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

    def _target(self, method: str) -> Tuple[str, str]:
        t = self._targets.get(method)
        if t is not None:
            return t
        plugin, dot, name = method.rpartition(".")
        if not dot:
            plugin = "host"
        if not isinstance(method, str) or not _NAME.match(name) or (dot and not _TARGET.match(plugin)):
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
        if self._online_fut is not None:
            timeout = await self._await_online(timeout)
        ws = self._connected_ws()
        rid = self._new_id()
        msg = {"type": "request", "id": rid, "to": [target], "method": name, "data": data}
        msg["timeout"] = max(1, round(timeout * 1000))
        try:
            frame = _dumps(msg)
        except (TypeError, ValueError) as e:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"the data of a call to {method} is not JSON: {e}") from None
        loop = self._loop
        assert loop is not None
        fut = loop.create_future()
        self._pending[rid] = fut
        ws.send_text(frame)
        timer = loop.call_later(timeout + _LOCAL_TIMEOUT_MARGIN, self._expire, rid, method, timeout)
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
        try:
            frame = _dumps(msg)
        except (TypeError, ValueError) as e:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"the data of {what} is not JSON: {e}") from None
        ws.send_text(frame)
        if ws.writing_paused:
            await ws.drain()

    async def emit(self, topic: str, data: Any = None, *, to: Optional[List[str]] = None) -> None:
        """Send an event: to every subscriber of ``topic``, or only to the plugins in ``to``.
        Needs ``coordination.messaging: true`` in the manifest."""
        if not isinstance(topic, str) or "*" in topic or not _TOPIC.match(topic):
            raise ValueError(f"topic {topic!r} must be a dotted name without wildcards")
        msg: Dict[str, Any] = {"type": "event", "id": self._new_id(), "topic": topic, "data": data}
        if to is not None:
            msg["to"] = list(to)
        await self._send_async(msg, f"event {topic}")

    async def broadcast(self, topic: Optional[str] = None, data: Any = None) -> None:
        """Send a broadcast to every other plugin and host client (with a topic: to its
        subscribers). Needs ``coordination.messaging: true`` in the manifest."""
        msg: Dict[str, Any] = {"type": "broadcast", "id": self._new_id(), "data": data}
        if topic is not None:
            if not isinstance(topic, str) or "*" in topic or not _TOPIC.match(topic):
                raise ValueError(f"topic {topic!r} must be a dotted name without wildcards")
            msg["topic"] = topic
        await self._send_async(msg, "a broadcast")

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

    def emit_sync(self, topic: str, data: Any = None, *, to: Optional[List[str]] = None) -> None:
        """``emit`` for plain ``def`` handlers."""
        return self._from_thread(lambda: self.emit(topic, data, to=to))

    def broadcast_sync(self, topic: Optional[str] = None, data: Any = None) -> None:
        """``broadcast`` for plain ``def`` handlers."""
        return self._from_thread(self.broadcast, topic, data)

    # -- incoming -----------------------------------------------------------------------
    def _on_message(self, payload: bytearray) -> None:
        try:
            msg = json.loads(payload)
        except ValueError as e:
            log.warning("logomesh: ignored a frame from the hub that is not JSON: %s", e)
            return
        if type(msg) is not dict:
            return
        kind = msg.get("type")
        if kind == "response":
            self._on_response(msg)
        elif kind == "request":
            self._on_request(msg)
        elif kind == "event" or kind == "broadcast":
            self._on_event(msg, kind)
        elif kind == "shutdown":
            data = msg.get("data")
            grace_ms = data.get("graceMs") if isinstance(data, dict) else None
            grace = grace_ms / 1000 if isinstance(grace_ms, (int, float)) and grace_ms >= 0 else self._grace
            self._begin_stop(grace)
        elif kind == "error":
            self._on_response({"correlationId": msg.get("correlationId"), "success": False, "error": msg.get("error")})
        # Unknown types are ignored: later protocol versions may add some.

    def _on_response(self, msg: Dict[str, Any]) -> None:
        fut = self._pending.pop(msg.get("correlationId"), None)  # type: ignore[arg-type]
        if fut is None:
            if not msg.get("success"):
                err = LogoMeshError.from_wire(msg.get("error"))
                log.warning("logomesh: the hub reported %s: %s", err.code, err.message)
            return
        if fut.done():
            return
        if msg.get("success"):
            fut.set_result(msg.get("data"))
        else:
            fut.set_exception(LogoMeshError.from_wire(msg.get("error")))

    def _reply(self, frame: bytes, gen: Optional[int] = None) -> None:
        # A response to a request that came in on a connection since lost cannot be
        # delivered: the hub that sent the request is gone.
        ws = self._ws
        if ws is not None and (gen is None or gen == self._gen):
            ws.send_text(frame)

    def _error_frame(self, rid: str, code: str, message: str, details: Any = None) -> bytes:
        error: Dict[str, Any] = {"code": code, "message": message}
        if details is not None:
            error["details"] = details
        msg = {"type": "response", "id": self._new_id(), "correlationId": rid, "success": False, "error": error}
        try:
            return _dumps(msg)
        except (TypeError, ValueError):
            del error["details"]
            return _dumps(msg)

    def _on_request(self, msg: Dict[str, Any]) -> None:
        rid = msg.get("id")
        if not isinstance(rid, str):
            return
        name = msg.get("method")
        if self._stopping:
            self._reply(self._error_frame(rid, "LM_PLUGIN_UNAVAILABLE", f"plugin {self.id} is shutting down"))
            return
        m = self._methods.get(name)  # type: ignore[arg-type]
        if m is None:
            self._reply(self._error_frame(rid, "LM_METHOD_NOT_FOUND", f"plugin {self.id} has no method {name!r}",
                                          {"method": name, "methods": sorted(self._methods)}))
            return
        assert self._loop is not None
        self._track(self._loop.create_task(self._serve_request(m, rid, msg.get("data"), self._gen)))

    async def _serve_request(self, m: _Method, rid: str, data: Any, gen: int) -> None:
        try:
            if m.is_async:
                result = await _invoke(m.fn, data)
            else:
                assert self._loop is not None
                result = await self._executor().submit(_invoke, m.fn, data)
                if inspect.isawaitable(result):
                    result = await result
            try:
                frame = _dumps({"type": "response", "id": self._new_id(), "correlationId": rid, "success": True, "data": result})
            except (TypeError, ValueError) as e:
                frame = self._error_frame(rid, "LM_PLUGIN_ERROR", f"method {m.name} returned a value that is not JSON: {e}")
        except LogoMeshError as e:
            frame = self._error_frame(rid, e.code, e.message, e.details)
        except _BadArguments as e:
            frame = self._error_frame(rid, "LM_INVALID_ARGUMENT", f"method {m.name}: {e}", {"method": m.name})
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error("logomesh: method %s failed", m.name, exc_info=True)
            frame = self._error_frame(rid, "LM_PLUGIN_ERROR", str(e) or type(e).__name__, {"type": type(e).__name__})
        self._reply(frame, gen)

    def _on_event(self, msg: Dict[str, Any], kind: str) -> None:
        if self._stopping or not self._listeners:
            return
        topic = msg.get("topic")
        if topic is not None and not isinstance(topic, str):
            return
        event: Optional[Event] = None
        loop = self._loop
        assert loop is not None
        for pattern, listeners in self._listeners.items():
            if topic is None:
                if pattern != "*":
                    continue
            elif not topic_matches(pattern, topic):
                continue
            if event is None:
                event = Event(topic, msg.get("data"), msg.get("from"), kind, str(msg.get("id")), msg.get("timestamp"))
            for listener in listeners:
                if listener.is_async:
                    self._track(loop.create_task(self._run_listener(listener, event)))
                else:
                    fut = self._executor().submit(_call_listener, listener, event.data, event)
                    fut.add_done_callback(self._listener_done)
                    self._track(fut)

    async def _run_listener(self, listener: _Listener, event: Event) -> None:
        try:
            await _call_listener(listener, event.data, event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.error("logomesh: handler for %s failed", event.topic, exc_info=True)

    @staticmethod
    def _listener_done(fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            e = fut.exception()
            log.error("logomesh: event handler failed", exc_info=(type(e), e, e.__traceback__))  # type: ignore[arg-type]

    def _executor(self) -> _Workers:
        if self._pool is None:
            assert self._loop is not None
            self._pool = _Workers(self._loop, self._max_workers)
        return self._pool

    def _track(self, fut: asyncio.Future) -> None:
        self._inflight.add(fut)
        fut.add_done_callback(self._untrack)

    def _untrack(self, fut: asyncio.Future) -> None:
        self._inflight.discard(fut)
        if not self._inflight and self._drained_fut is not None and not self._drained_fut.done():
            self._drained_fut.set_result(None)

    async def _subscribe(self, topic: str) -> None:
        if topic in self._subscribed or self._online_fut is not None:
            return
        self._subscribed.add(topic)
        gen = self._gen
        try:
            rid = self._new_id()
            assert self._loop is not None
            fut = self._loop.create_future()
            self._pending[rid] = fut
            self._connected_ws().send_text(_dumps({"type": "subscribe", "id": rid, "topic": topic}))
            await asyncio.wait_for(fut, _SUBSCRIBE_TIMEOUT)
        except (LogoMeshError, asyncio.TimeoutError) as e:
            if gen != self._gen:
                return  # the connection was lost meanwhile; the next one subscribes again
            self._subscribed.discard(topic)
            log.warning("logomesh: subscribing to %s failed: %s", topic, e)

    # -- lifecycle ----------------------------------------------------------------------
    def _close_handler(self, gen: int) -> Callable[[Optional[int], str], None]:
        return lambda code, reason: self._on_close(gen, code, reason)

    def _on_close(self, gen: int, code: Optional[int], reason: str) -> None:
        if gen != self._gen:
            return  # an older connection, already given up
        if self._established and self._reconnect_ms > 0 or self._online_fut is not None:
            lost: LogoMeshError = _ConnectionLost(code, reason)
        else:
            lost = LogoMeshError("LM_CONTROLLER_UNAVAILABLE", f"the connection to the hub closed (code {code})",
                                 {"code": code, "reason": reason})
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(lost)
        self._pending.clear()
        self._subscribed.clear()
        if not self._closing and self._lost_fut is not None and not self._lost_fut.done():
            self._lost_fut.set_result((code, reason))

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

    async def wait_ready(self) -> None:
        """Wait until hello has been answered and the subscriptions are in place (for
        tests: ``serve()`` runs in another task)."""
        if self._ready:
            return
        fut = asyncio.get_running_loop().create_future()
        self._ready_waiters.append(fut)
        await fut

    def _set_ready(self) -> None:
        self._ready = True
        waiters, self._ready_waiters = self._ready_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.get_loop().call_soon_threadsafe(_set_result, fut, None)

    @property
    def serving(self) -> bool:
        return self._loop is not None

    def _open(self, path: str, timeout: float) -> Awaitable[_ws.WebSocketClient]:
        """Connect as a new connection generation."""
        self._gen += 1
        self._lost_fut = asyncio.get_running_loop().create_future()
        return _ws.connect(path, self._on_message, self._close_handler(self._gen), timeout=timeout)

    async def _connect(self, path: str, timeout: float) -> Optional[_ws.WebSocketClient]:
        loop = asyncio.get_running_loop()
        assert self._stop_fut is not None
        deadline = loop.time() + timeout
        delay = 0.01
        while True:
            try:
                return await self._open(path, max(0.1, deadline - loop.time()))
            except (FileNotFoundError, ConnectionRefusedError) as e:
                if loop.time() >= deadline:
                    raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE",
                                        f"no hub answers at {path}: {e.strerror or e}", {"socket": path}) from None
            except (_ws.HandshakeError, OSError, asyncio.TimeoutError) as e:
                raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE",
                                    f"connecting to the hub at {path} failed: {e or type(e).__name__}", {"socket": path}) from None
            # The socket may not exist yet while the controller starts: try again shortly.
            await asyncio.wait({self._stop_fut}, timeout=min(delay, max(0.0, deadline - loop.time())))
            if self._stop_fut.done():
                return None
            delay = min(delay * 2, 0.25)

    async def serve(self, socket_path: Optional[str] = None, *, connect_timeout: float = 10.0) -> None:
        """Connect, say hello, and serve until shutdown (the hub's, or ``stop()``). Returns
        after a clean stop; raises :class:`LogoMeshError` when the hub cannot be reached,
        refuses hello, or the connection is lost and not re-made within the reconnect
        window."""
        if self._loop is not None:
            raise RuntimeError("this plugin is already serving")
        loop = asyncio.get_running_loop()
        self._reset()
        self._loop = loop
        self._stop_fut = loop.create_future()
        self._force_fut = loop.create_future()
        self._reconnect_ms = self._reconnect_option if self._reconnect_option is not None else _reconnect_ms_from_env()
        path = socket_path or self._socket_path or os.environ.get("LOGOMESH_HUB_SOCKET") or DEFAULT_SOCKET
        try:
            ws = await self._connect(path, connect_timeout)
            if ws is None:
                return
            self._ws = ws
            hello = self._send_hello(ws)
            done, _ = await asyncio.wait({hello, self._stop_fut}, timeout=_HELLO_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if hello in done:
                self.hub_info = hello.result()  # raises the hub's refusal
            elif not done:
                raise LogoMeshError("LM_TIMEOUT", f"the hub did not answer hello within {_HELLO_TIMEOUT:g} s")
            else:
                hello.cancel()
            self._established = True
            if not self._stop_fut.done() and self._listeners:
                await asyncio.gather(*(self._subscribe(t) for t in list(self._listeners)))
            self._set_ready()
            while True:
                assert self._lost_fut is not None
                await asyncio.wait({self._stop_fut, self._lost_fut}, return_when=asyncio.FIRST_COMPLETED)
                if self._stop_fut.done():
                    break
                code, reason = self._lost_fut.result()
                if self._reconnect_ms <= 0:
                    if code in (1000, 1001):
                        return
                    raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE", f"the hub closed the connection (code {code}{': ' + reason if reason else ''})",
                                        {"code": code, "reason": reason})
                if not await self._reconnect(path, code, reason):
                    return  # stopped while reconnecting
            grace = self._stop_fut.result()
            await self._drain(grace)
            self._closing = True
            if self._ws is not None:
                await self._ws.close(1000)
        finally:
            self._finish()

    def _send_hello(self, ws: _ws.WebSocketClient) -> asyncio.Future:
        assert self._loop is not None
        rid = self._new_id()
        hello = self._loop.create_future()
        self._pending[rid] = hello
        hello.add_done_callback(lambda _: self._pending.pop(rid, None))
        ws.send_text(_dumps({"type": "hello", "id": rid, "protocol": PROTOCOL_VERSION, "sdk": SDK,
                             "methods": list(self._methods)}))
        return hello

    async def _reconnect(self, path: str, code: Optional[int], reason: str) -> bool:
        """After the connection is lost: connect again with backoff for up to the reconnect
        window, say hello with the same methods, subscribe again to every topic. True once
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
        delay = _RECONNECT_FIRST_DELAY
        last = "no attempt"
        attempts = 0
        try:
            while True:
                await asyncio.wait({self._stop_fut}, timeout=max(0.0, min(delay, deadline - loop.time())))
                if self._stop_fut.done():
                    return False
                delay = min(delay * 2, _RECONNECT_MAX_DELAY)
                attempts += 1
                ws = None
                try:
                    ws = await self._until_stopped(self._open(path, max(0.1, deadline - loop.time())))
                    if ws is None:
                        return False
                    hello = self._send_hello(ws)
                    wait = min(_HELLO_TIMEOUT, max(1.0, deadline - loop.time()))
                    done, _ = await asyncio.wait({hello, self._stop_fut}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                    if self._stop_fut.done():
                        hello.cancel()
                        ws.abort()
                        return False
                    if hello not in done:
                        hello.cancel()
                        raise asyncio.TimeoutError(f"no answer to hello within {wait:g} s")
                    self.hub_info = hello.result()  # a refusal (LogoMeshError) ends serve()
                except _ConnectionLost as e:
                    last = f"the connection closed during hello (code {e.details['code']})"
                    ws = None
                except (OSError, _ws.HandshakeError, asyncio.TimeoutError) as e:
                    last = f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"
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
            self._online_fut = None  # _subscribe() and sending work again
            if self._listeners:
                await asyncio.gather(*(self._subscribe(t) for t in list(self._listeners)))
            log.warning("logomesh: plugin %s: reconnected to the hub after %d ms", self.id, round((loop.time() - lost_at) * 1000))
            back = True
            return True
        finally:
            if self._online_fut is online:
                self._online_fut = None
            # Calls waiting for the connection go on (or learn that serve() is over).
            _set_result(online, back)

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

    async def _drain(self, grace: float) -> None:
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
