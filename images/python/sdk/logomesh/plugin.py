"""The plugin side of the LogoMesh hub protocol (docs/protocol.md, version 1): the Plugin
class, put together from its parts (calls.py, dispatch.py, connection.py, shutdown.py)."""
from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

from . import _ws
from ._workers import Workers, set_result
from .calls import CallsMixin
from .connection import ConnectionMixin
from .dispatch import DispatchMixin, Event, Listener, Method
from .errors import LogoMeshError
from .options import DEFAULT_SOCKET, DEFAULT_TIMEOUT, HELLO_TIMEOUT, SUBSCRIBE_TIMEOUT, Options, first_hello_timeout
from .protocol import MAX_MESSAGE_BYTES, NAME, PROTOCOL_VERSION, SDK, TOPIC, VERSION, topic_matches
from .segments import SegmentsMixin, segments_dir
from .shutdown import ShutdownMixin

# Codes that say the hub did not answer (the connection went, or no answer in time), as
# opposed to an answer that refused.
NOT_ANSWERED = ("LM_TIMEOUT", "LM_PLUGIN_UNAVAILABLE", "LM_CONTROLLER_UNAVAILABLE")

log = logging.getLogger("logomesh")

__all__ = ["Plugin", "Event", "SDK", "PROTOCOL_VERSION", "DEFAULT_SOCKET", "VERSION", "DEFAULT_TIMEOUT", "topic_matches"]


class Plugin(CallsMixin, DispatchMixin, ConnectionMixin, ShutdownMixin, SegmentsMixin):
    """A LogoMesh plugin: register methods and event handlers, then ``run()``.

    ``plugin_id`` and ``socket_path`` default to ``LOGOMESH_PLUGIN_ID`` and
    ``LOGOMESH_HUB_SOCKET``, which the controller sets. ``max_workers`` bounds the thread
    pool that runs plain ``def`` handlers. ``grace`` is how long (seconds) requests in
    flight may take to finish after SIGTERM or SIGINT; a hub ``shutdown`` names its own.
    ``reconnect_ms`` is how long to keep trying to reconnect after an established
    connection is lost (default ``LOGOMESH_RECONNECT_MS``, else 60000; 0 never reconnects).
    ``frames="msgpack"`` (or ``LOGOMESH_FRAMES=msgpack``) offers binary frames in hello; the SDK
    and the hub speak msgpack once the hub agrees (default ``json``).
    """

    def __init__(self, plugin_id: Optional[str] = None, *, socket_path: Optional[str] = None,
                 max_workers: int = 8, grace: float = 5.0, reconnect_ms: Optional[int] = None,
                 frames: Optional[str] = None) -> None:
        self._options = Options(plugin_id, socket_path, max_workers, grace, reconnect_ms, frames)
        self.id = self._options.plugin_id
        self._max_workers = max_workers
        self._grace = grace
        self._methods: Dict[str, Method] = {}
        self._listeners: Dict[str, List[Listener]] = {}
        self._pool: Optional[Workers] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._ws: Optional[_ws.WebSocketClient] = None
        self._ready_waiters: List[asyncio.Future] = []
        self._reset()

    def _reset(self) -> None:
        self._loop = None
        self._ws = None
        self._pending: Dict[str, asyncio.Future] = {}
        self._inflight: Set[asyncio.Future] = set()
        self._ids = itertools.count(1)
        #: Subscribes posted to the loop from worker threads (on() in a plain def handler): see _serve_in_worker.
        self._thread_posts = 0
        self._shm = segments_dir() is not None
        self._targets: Dict[str, Tuple[str, str]] = {}
        # Topics subscribed (or being subscribed) on the current connection.
        self._subscribed: Set[str] = set()
        # The current connection's hello was accepted: on() may subscribe by itself.
        self._live = False
        # The id of the hello waiting for its answer.
        self._hello_rid: Optional[str] = None
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
        # The largest message either way: the hub's, once it announced it in hello's answer.
        self._max_bytes = MAX_MESSAGE_BYTES
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
        if not NAME.match(name):
            raise ValueError(f"method name {name!r} must be a letter or _, then letters, digits or _ (at most 64)")
        if self._loop is not None:
            raise RuntimeError(f"method {name!r}: register methods before run(); the hub learns them from hello")
        if name in self._methods:
            raise ValueError(f"method {name!r} is registered twice")
        self._methods[name] = Method(name, fn)
        return fn

    @property
    def methods(self) -> List[str]:
        return list(self._methods)

    def on(self, topic: str, handler: Optional[Callable] = None) -> Any:
        """Subscribe to a topic (``a.b``, ``a.*`` or ``*``) and call ``handler(data)`` (or
        ``handler(data, event)`` when it takes two positional arguments) for every event or
        broadcast that matches. ``event`` is an :class:`Event`: its ``sender`` and ``topic``
        are set by the hub, so they say who really sent it. ``*`` handlers also receive
        broadcasts without a topic. Usable as ``@plugin.on("topic")``, before ``run()`` or
        while serving.

        Topics registered before ``run()`` go in hello's ``subscriptions``: the hub
        subscribes them before the plugin counts as ready, so no event published once it is
        ready is missed. A topic registered while serving is subscribed with a
        ``subscribe`` message, written before the handler that registered it returns (so
        before that handler's answer). The manifest must cover each topic under
        ``coordination.subscribes``: the hub refuses a hello naming one it does not (the
        plugin ends with that error), and a later ``subscribe`` is refused with a warning and
        the topic's handlers are dropped (so no later hello names it)."""
        if not isinstance(topic, str) or not TOPIC.match(topic):
            raise ValueError(f"topic {topic!r} must be a dotted name, optionally ending in .* (or * for all)")

        def register(fn: Callable) -> Callable:
            listeners = self._listeners.setdefault(topic, [])
            listeners.append(Listener(fn))
            loop = self._loop
            if len(listeners) == 1 and loop is not None and self._live:
                try:
                    here = asyncio.get_running_loop() is loop
                except RuntimeError:
                    here = False
                # From the loop itself, at once; from a worker thread, queued before that
                # handler's result is (call_soon_threadsafe keeps the order).
                if here:
                    self._subscribe_later(topic)
                else:
                    self._thread_posts += 1
                    loop.call_soon_threadsafe(self._subscribe_later, topic)
            return fn

        return register(handler) if handler is not None else register

    def _subscribe_later(self, topic: str) -> None:
        """Write the subscribe now; wait for its answer in a task."""
        sent = self._send_subscribe(topic)
        if sent is not None:
            self._track(asyncio.ensure_future(self._confirm_subscribe(topic, *sent)))

    async def _subscribe(self, topic: str) -> None:
        sent = self._send_subscribe(topic)
        if sent is not None:
            await self._confirm_subscribe(topic, *sent)

    def _send_subscribe(self, topic: str) -> Optional[Tuple[asyncio.Future, int]]:
        """Write a subscribe for ``topic`` unless it is subscribed (or being subscribed) on
        this connection, or the connection is not up: then the next hello carries it."""
        if topic in self._subscribed or not self._live or self._online_fut is not None:
            return None
        self._subscribed.add(topic)
        gen = self._gen
        assert self._loop is not None
        fut = self._loop.create_future()
        rid = self._new_id()
        try:
            frame = self._frame({"type": "subscribe", "id": rid, "topic": topic}, f"subscribe {topic}")
            self._pending[rid] = fut
            self._connected_ws().send_text(frame)
        except LogoMeshError as e:
            self._pending.pop(rid, None)
            fut.set_exception(e)
        return fut, gen

    async def _confirm_subscribe(self, topic: str, fut: asyncio.Future, gen: int) -> None:
        try:
            await asyncio.wait_for(fut, SUBSCRIBE_TIMEOUT)
        except (LogoMeshError, asyncio.TimeoutError) as e:
            if gen != self._gen:
                return  # the connection was lost meanwhile; the next hello subscribes again
            self._subscribed.discard(topic)
            if isinstance(e, LogoMeshError) and e.code not in NOT_ANSWERED:
                # The hub refused it: its handlers go too, or the next reconnect's hello would
                # name the topic and the hub would refuse the whole hello.
                self._listeners.pop(topic, None)
                log.warning("logomesh: subscribing to %s refused, its handlers dropped: %s", topic, e)
                return
            log.warning("logomesh: subscribing to %s failed: %s", topic, e)

    async def _subscribe_rest(self, sent: List[str]) -> None:
        """The hub accepted a hello that subscribed ``sent``: subscribe the topics registered
        since it was written (from another thread, say)."""
        self._subscribed.update(sent)
        self._live = True
        rest = [t for t in list(self._listeners) if t not in self._subscribed]
        if rest:
            await asyncio.gather(*(self._subscribe(t) for t in rest))

    # -- serving ------------------------------------------------------------------------
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
                fut.get_loop().call_soon_threadsafe(set_result, fut, None)

    @property
    def serving(self) -> bool:
        return self._loop is not None

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
        self._reconnect_ms = self._options.reconnect_window_ms()
        path = self._options.socket(socket_path)
        try:
            ws = await self._connect(path, connect_timeout)
            if ws is None:
                return
            self._ws = ws
            hello, topics = self._send_hello(ws)
            done, _ = await asyncio.wait({hello, self._stop_fut}, timeout=first_hello_timeout(), return_when=asyncio.FIRST_COMPLETED)
            if hello in done:
                self._accepted(hello.result())  # raises the hub's refusal
            elif not done:
                raise LogoMeshError("LM_TIMEOUT", f"the hub did not answer hello within {HELLO_TIMEOUT:g} s")
            else:
                hello.cancel()
            self._established = True
            if not self._stop_fut.done():
                await self._subscribe_rest(topics)
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
