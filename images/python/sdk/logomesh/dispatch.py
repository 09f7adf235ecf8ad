"""Inbound messages: every frame from the hub is decoded within the protocol's limits and
routed to a pending call, a method, or the event handlers."""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from . import _ws
from ._workers import QUIET, Workers
from .errors import BadArguments, LogoMeshError
from .protocol import ID_MAX_LENGTH, EncodeError, FrameRefused, decode, decode_binary, encode, topic_matches
from .segments import pack, unpack

log = logging.getLogger("logomesh")

#: An error message in an answer is cut to this many characters when the whole would not fit.
_MESSAGE_CUT = 1024


class Event(NamedTuple):
    """An event or broadcast as a handler registered with ``on`` may receive it.

    ``sender`` and ``topic`` are the hub's: the hub sets ``from`` on everything it relays,
    so ``sender`` is the plugin id (or ``host``) that really sent it, whatever the data
    claims."""

    topic: Optional[str]
    data: Any
    sender: Optional[str]
    kind: str  # "event" or "broadcast"
    id: str
    timestamp: Optional[int]


def invoke(fn: Callable, data: Any) -> Any:
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
            raise BadArguments(str(e)) from None
        raise


def is_async(fn: Callable) -> bool:
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


class Method:
    __slots__ = ("name", "fn", "is_async")

    def __init__(self, name: str, fn: Callable) -> None:
        self.name = name
        self.fn = fn
        self.is_async = is_async(fn)


class Listener:
    __slots__ = ("fn", "is_async", "with_event")

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.is_async = is_async(fn)
        self.with_event = _positional_arity(fn) >= 2


def _call_listener(listener: Listener, data: Any, event: Event) -> Any:
    return listener.fn(data, event) if listener.with_event else listener.fn(data)


class DispatchMixin:
    """The part of :class:`logomesh.Plugin` that receives."""

    # Set by Plugin.__init__ / Plugin._reset.
    id: str
    _loop: Optional[asyncio.AbstractEventLoop]
    _ws: Optional[_ws.WebSocketClient]
    _gen: int
    _pending: Dict[str, asyncio.Future]
    _inflight: Set[asyncio.Future]
    _methods: Dict[str, Method]
    _listeners: Dict[str, List[Listener]]
    _pool: Optional[Workers]
    _stopping: bool
    _drained_fut: Optional[asyncio.Future]
    _max_bytes: int
    _max_workers: int
    _hello_rid: Optional[str]
    _live: bool
    _online_fut: Optional[asyncio.Future]
    _accepted: Callable[[Any], None]
    _grace: float
    #: Shared memory is mounted (LOGOMESH_SEGMENTS_DIR, read at each serve()): os.environ read
    #: once, not up to three times a request.
    _shm: bool

    _new_id: Callable[[], str]
    _thread_posts: int
    _binary_frames: Callable[[], bool]
    _begin_stop: Callable[[float], None]

    def _on_binary(self, payload: bytearray) -> None:
        """A binary (msgpack) frame: the same message objects as text ones."""
        self._on_message(payload, True)

    def _on_message(self, payload: bytearray, binary: bool = False) -> None:
        pool = self._pool
        if pool is not None and pool.has_finished:
            pool.reap()  # the plain def runs that answered by themselves since the last frame
        try:
            msg = decode_binary(payload, self._max_bytes) if binary else decode(payload, self._max_bytes)
        except FrameRefused as e:
            self._refuse(e)
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

    def _refuse(self, e: FrameRefused) -> None:
        """A frame too large, too deep or not JSON: its request is answered with the code,
        the call waiting for it fails with it, anything else is dropped (and logged)."""
        kind = e.fields.get("type")
        if kind == "request" and 0 < len(e.fields.get("id", "")) <= ID_MAX_LENGTH:
            log.warning("logomesh: refused request %s from the hub: %s", e.fields["id"], e.message)
            self._reply(self._error_frame(e.fields["id"], e.code, e.message))
            return
        fut = self._pending.pop(e.fields.get("correlationId", ""), None) if kind in ("response", "error") else None
        if fut is not None:
            if not fut.done():
                fut.set_exception(LogoMeshError(e.code, f"the answer was refused: {e.message}"))
            return
        log.warning("logomesh: dropped a frame from the hub (type %s, %s): %s", kind or "unknown", e.code, e.message)

    def _on_response(self, msg: Dict[str, Any]) -> None:
        if msg.get("success") and self._hello_rid is not None and msg.get("correlationId") == self._hello_rid:
            self._hello_accepted(msg.get("data"))
        fut = self._pending.pop(msg.get("correlationId"), None)  # type: ignore[arg-type]
        if fut is None:
            if not msg.get("success"):
                err = LogoMeshError.from_wire(msg.get("error"))
                log.warning("logomesh: the hub reported %s: %s", err.code, err.message)
            return
        if fut.done():
            return
        if msg.get("success"):
            data = msg.get("data")
            fut.set_result(unpack(self, data) if self._shm else data)
        else:
            fut.set_exception(LogoMeshError.from_wire(msg.get("error")))

    def _hello_accepted(self, info: Any) -> None:
        """Before the next frame is read: the hub's maximum message size holds, and (on the
        first connection) on() subscribes by itself, so a request served after hello that
        registers a topic writes its subscribe before its answer. (On a new connection after a
        loss, _reconnect() does the latter once it has made the connection current.)"""
        self._hello_rid = None
        self._accepted(info)
        if self._online_fut is None:
            self._live = True

    def _reply(self, frame: bytes, gen: Optional[int] = None) -> None:
        # A response to a request that came in on a connection since lost cannot be
        # delivered: the hub that sent the request is gone.
        ws = self._ws
        if frame and ws is not None and (gen is None or gen == self._gen):
            ws.send_text(frame)

    def _error_frame(self, rid: str, code: str, message: str, details: Any = None) -> bytes:
        """A failed response. Details that cannot be sent are left out, and a message too
        long for the maximum message size is cut, so that the caller always gets its code."""
        error: Dict[str, Any] = {"code": code, "message": message}
        if details is not None:
            error["details"] = details
        msg = {"type": "response", "id": self._new_id(), "correlationId": rid, "success": False, "error": error}
        try:
            return encode(msg, self._max_bytes, self._binary_frames())
        except EncodeError:
            error.pop("details", None)
        error["code"] = code if isinstance(code, str) and len(code) <= 64 else "LM_PLUGIN_ERROR"
        error["message"] = str(message)[:_MESSAGE_CUT]
        try:
            return encode(msg, self._max_bytes, self._binary_frames())
        except EncodeError as e:
            # Only a hub announcing an absurdly small maximum gets here: nothing can be sent.
            log.warning("logomesh: the answer to request %s cannot be sent: it %s", rid, e.reason)
            return b""

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
        data = msg.get("data")
        if self._shm:
            data = unpack(self, data)
        gen = self._gen
        if m.is_async:
            self._track(self._loop.create_task(self._serve_request(m, rid, data, gen)))
        else:
            # A plain def goes straight to a worker, which writes the answer itself when it can
            # (_serve_in_worker); the loop's one callback answers otherwise. No task, and on
            # a busy host no wait for the loop's thread to get a CPU before the answer leaves.
            ws = self._ws
            # In flight until the pool ends it (Workers' on_end is _untrack): no done callback,
            # which would take one more turn of the loop per call.
            self._inflight.add(self._executor().run(self._serve_in_worker, (m, rid, data, ws), lambda out, exc: self._served(m, rid, gen, out, exc)))

    def _serve_in_worker(self, m: Method, rid: str, data: Any, ws: Optional[_ws.WebSocketClient]) -> Any:
        """In a worker: run the handler and, unless the loop must take over, write its answer
        on the connection the request came in on, and return QUIET: the loop is not woken
        for it (its future is reaped at the next frame). (result, None) leaves the rest to the loop:
        an awaitable result, shared-memory segments, or a subscribe this thread queued on
        the loop (on() in a handler), which must reach the hub before the answer."""
        posts = self._thread_posts
        try:
            result = invoke(m.fn, data)
        except BaseException as e:  # noqa: BLE001 - answered below, whatever it is
            frame = self._answer(m, rid, None, e)
        else:
            if inspect.isawaitable(result) or self._shm:
                return result, None
            frame = self._answer(m, rid, result, None)
        if ws is not None and posts == self._thread_posts and ws.send_from_thread(frame):
            return QUIET
        return None, frame

    def _served(self, m: Method, rid: str, gen: int, out: Tuple[Any, Optional[bytes]], exc: Optional[BaseException]) -> None:
        """On the loop, after the worker: send what it could not, or finish what it left."""
        if exc is not None:  # _serve_in_worker itself failed: answer with that
            self._reply(self._answer(m, rid, None, exc), gen)
            return
        result, frame = out
        if frame is None:
            self._answer_sync(m, rid, gen, result, None)
        elif frame:
            self._reply(frame, gen)

    async def _serve_request(self, m: Method, rid: str, data: Any, gen: int) -> None:
        try:
            result = await invoke(m.fn, data)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - whatever a handler raises (even SystemExit) answers the caller
            self._reply(self._answer(m, rid, None, e), gen)
            return
        self._reply(self._answer(m, rid, result, None), gen)

    def _answer_sync(self, m: Method, rid: str, gen: int, result: Any, exc: Optional[BaseException]) -> None:
        """On the loop: a plain def's outcome answered; one that returned an awaitable is awaited first."""
        if exc is None and inspect.isawaitable(result):
            self._track(asyncio.ensure_future(self._serve_awaitable(m, rid, gen, result)))
            return
        self._reply(self._answer(m, rid, result, exc), gen)

    async def _serve_awaitable(self, m: Method, rid: str, gen: int, awaitable: Any) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - as in _serve_request
            self._reply(self._answer(m, rid, None, e), gen)
            return
        self._reply(self._answer(m, rid, result, None), gen)

    def _answer(self, m: Method, rid: str, result: Any, exc: Optional[BaseException]) -> bytes:
        """The response frame for a handler's result, or for what it raised."""
        if exc is None:
            try:
                reply: Dict[str, Any] = {"type": "response", "id": self._new_id(), "correlationId": rid, "success": True, "data": result}
                if self._shm:
                    reply["data"], refs = pack(result)
                    if refs:
                        reply["segments"] = refs
                return encode(reply, self._max_bytes, self._binary_frames())
            except EncodeError as e:
                return self._error_frame(rid, "LM_MESSAGE_TOO_LARGE" if e.too_large else "LM_PLUGIN_ERROR",
                                         f"the result of method {m.name} {e.reason}")
            except BaseException as e:  # noqa: BLE001 - a result that cannot be packed answers as a failure
                exc = e
        if isinstance(exc, LogoMeshError):
            return self._error_frame(rid, exc.code, exc.message, exc.details)
        if isinstance(exc, BadArguments):
            return self._error_frame(rid, "LM_INVALID_ARGUMENT", f"method {m.name}: {exc}", {"method": m.name})
        log.error("logomesh: method %s failed", m.name, exc_info=(type(exc), exc, exc.__traceback__))
        return self._error_frame(rid, "LM_PLUGIN_ERROR", str(exc) or type(exc).__name__, {"type": type(exc).__name__})

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
                sender = msg.get("from")
                data = msg.get("data")
                event = Event(topic, unpack(self, data) if self._shm else data, sender if isinstance(sender, str) else None, kind, str(msg.get("id")),
                              msg.get("timestamp"))
            for listener in listeners:
                if listener.is_async:
                    self._track(loop.create_task(self._run_listener(listener, event)))
                else:
                    fut = self._executor().submit(_call_listener, listener, event.data, event)
                    fut.add_done_callback(self._listener_done)
                    self._track(fut)

    async def _run_listener(self, listener: Listener, event: Event) -> None:
        try:
            await _call_listener(listener, event.data, event)
        except asyncio.CancelledError:
            raise
        except BaseException:  # noqa: BLE001 - a handler's failure never ends the plugin
            log.error("logomesh: handler for %s failed", event.topic, exc_info=True)

    @staticmethod
    def _listener_done(fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            e = fut.exception()
            log.error("logomesh: event handler failed", exc_info=(type(e), e, e.__traceback__))  # type: ignore[arg-type]

    def _executor(self) -> Workers:
        if self._pool is None:
            assert self._loop is not None
            self._pool = Workers(self._loop, self._max_workers, self._untrack)
        return self._pool

    def _track(self, fut: asyncio.Future) -> None:
        self._inflight.add(fut)
        fut.add_done_callback(self._untrack)

    def _untrack(self, fut: asyncio.Future) -> None:
        self._inflight.discard(fut)
        if not self._inflight and self._drained_fut is not None and not self._drained_fut.done():
            self._drained_fut.set_result(None)
