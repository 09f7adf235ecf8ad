"""A fake hub for testing plugins without LogoMesh: a WebSocket server on a Unix socket in a
temporary folder that speaks the hub's side of the protocol to one plugin.

    from logomesh.testing import FakeHub

    async with FakeHub("analyzer") as hub:
        hub.expose("tokenizer.tokenize", lambda text: {"tokens": text.split()})
        async with hub.serving(plugin):          # runs plugin.serve() against the hub
            result = await hub.call("analyze_results")

It uses Debian's ``websockets`` package (in the runtime image), an implementation
independent of the SDK's own client.

Given a ``transcript`` (``logomesh.transcript.load()``: the protocol's conformance session),
the hub plays that session instead, step by step, and ``replayed()`` tells how it went.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import os
import shutil
import tempfile
import time
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Set

import websockets

from . import transcript as _transcript
from .errors import LogoMeshError
from .plugin import Plugin, topic_matches

__all__ = ["FakeHub", "NO_REPLY"]

#: Return this from a method served by the fake hub to never answer the call.
NO_REPLY = object()


class FakeHub:
    """The hub side of one plugin's connection.

    ``exposes``: when given, a hello naming any other method is refused with
    LM_PERMISSION_DENIED, as the hub does for methods the manifest does not list.
    ``subscribes``: when given (the manifest's ``coordination.subscribes``), a hello or a
    ``subscribe`` asking for a topic no pattern of it covers is refused with
    LM_PERMISSION_DENIED, as the hub does.
    ``messaging``: when False, events and broadcasts are answered with LM_PERMISSION_DENIED.
    ``transcript``: play this recorded session on the plugin's connection instead (see
    :mod:`logomesh.transcript`); ``replayed()`` returns once it is over.
    """

    def __init__(self, plugin_id: str = "plugin", *, exposes: Optional[List[str]] = None, messaging: bool = True,
                 socket_path: Optional[str] = None, transcript: Optional[Dict[str, Any]] = None,
                 subscribes: Optional[List[str]] = None) -> None:
        self.plugin_id = plugin_id
        self._transcript = transcript
        self._replayed: Optional[asyncio.Future] = None
        self.exposes = exposes
        self.subscribes = subscribes
        self.messaging = messaging
        #: where the hub listens: ``socket_path``, or hub.sock in a new temporary folder
        self.socket_path = socket_path or ""
        self._dir = ""
        self._server: Any = None
        self._ids = itertools.count(1)
        self._methods: Dict[str, Callable] = {}
        self._pending: Dict[str, asyncio.Future] = {}
        self._changed: Optional[asyncio.Condition] = None
        self._conn_tasks: Set[asyncio.Task] = set()
        self.ws: Any = None
        #: every message the plugin sent, in order
        self.received: List[Dict[str, Any]] = []
        #: the plugin's hello, once it arrived
        self.hello: Optional[Dict[str, Any]] = None
        self.request_path: Optional[str] = None
        self.request_headers: Dict[str, str] = {}
        #: topics the plugin is subscribed to on its current connection
        self.subscriptions: Set[str] = set()
        #: the WebSocket close code of the plugin's last connection, once it closed
        self.close_code: Optional[int] = None
        self.connections = 0

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> "FakeHub":
        self._changed = asyncio.Condition()
        self._replayed = asyncio.get_running_loop().create_future()
        if not self.socket_path:
            self._dir = tempfile.mkdtemp(prefix="logomesh-hub-")
            self.socket_path = os.path.join(self._dir, "hub.sock")
        self._server = await websockets.unix_serve(self._handle, self.socket_path, ping_interval=None, max_size=None)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = ""

    async def drop(self) -> None:
        """Drop the plugin's connection abruptly, without a close handshake (the plugin sees
        it as lost). The hub goes on listening, so the plugin can reconnect."""
        ws = self.ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.wait_closed(), 5)

    async def crash(self) -> None:
        """As a controller killed with kill -9: drop the plugin's connection and stop
        listening. The socket file stays behind, refusing connections, until ``restart()``."""
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def restart(self) -> None:
        """Listen again at the same path after ``crash()``, as a restarted controller does."""
        if self._server is None:
            self._server = await websockets.unix_serve(self._handle, self.socket_path, ping_interval=None, max_size=None)

    async def __aenter__(self) -> "FakeHub":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def env(self) -> Dict[str, str]:
        """The variables the controller would set, for a plugin run as a subprocess."""
        return {"LOGOMESH_HUB_SOCKET": self.socket_path, "LOGOMESH_PLUGIN_ID": self.plugin_id}

    @contextlib.asynccontextmanager
    async def serving(self, plugin: Plugin, timeout: float = 5.0) -> AsyncIterator[asyncio.Task]:
        """Run ``plugin.serve()`` against this hub until the block ends, then shut it down."""
        task = asyncio.get_running_loop().create_task(plugin.serve(self.socket_path))
        try:
            ready = asyncio.get_running_loop().create_task(plugin.wait_ready())
            done, _ = await asyncio.wait({task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                if task in done:
                    task.result()
                raise TimeoutError("the plugin did not become ready")
            yield task
        finally:
            if not task.done():
                if self.ws is not None and not self.ws.closed:
                    await self.shutdown(grace_ms=int(timeout * 1000))
                try:
                    await asyncio.wait_for(task, timeout)
                except asyncio.TimeoutError:
                    task.cancel()

    # -- the plugin's calls -------------------------------------------------------------
    def expose(self, method: str, handler: Callable) -> None:
        """Answer the plugin's calls of ``method`` ("plugin-id.method", or a host method
        name) with ``handler``: sync or async, called like a plugin method (an object as
        keyword arguments). Raise LogoMeshError to answer with a code; return NO_REPLY to
        never answer."""
        self._methods[method] = handler

    # -- to the plugin ------------------------------------------------------------------
    async def send(self, msg: Any) -> None:
        """Send one frame as is: a dict as JSON, a str or bytes raw."""
        if self.ws is None:
            raise RuntimeError("no plugin is connected")
        await self.ws.send(json.dumps(msg) if isinstance(msg, dict) else msg)

    async def request(self, method: str, data: Any = None, *, sender: str = "host", timeout: float = 5.0) -> Dict[str, Any]:
        """Send a request to the plugin and return its raw response message."""
        rid = f"hub-{next(self._ids)}"
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await self.send({"type": "request", "id": rid, "from": sender, "timestamp": int(time.time() * 1000),
                         "to": [self.plugin_id], "method": method, "data": data, "timeout": int(timeout * 1000)})
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(rid, None)

    async def call(self, method: str, data: Any = None, *, sender: str = "host", timeout: float = 5.0) -> Any:
        """Call one of the plugin's methods; its result, or LogoMeshError with its code."""
        resp = await self.request(method, data, sender=sender, timeout=timeout)
        if resp.get("success"):
            return resp.get("data")
        raise LogoMeshError.from_wire(resp.get("error"))

    async def publish(self, topic: Optional[str], data: Any = None, *, kind: str = "event", sender: str = "other") -> None:
        """Deliver an event (or a broadcast with ``kind="broadcast"``) to the plugin, as the
        hub would for a subscription that matches (this fake does not filter)."""
        msg: Dict[str, Any] = {"type": kind, "id": f"hub-{next(self._ids)}", "from": sender,
                               "timestamp": int(time.time() * 1000), "data": data}
        if topic is not None:
            msg["topic"] = topic
        await self.send(msg)

    def subscribed(self, topic: str) -> bool:
        """Would the hub deliver ``topic`` to the plugin under its subscriptions?"""
        return any(topic_matches(p, topic) for p in self.subscriptions)

    async def shutdown(self, grace_ms: int = 5000, *, wait: bool = True) -> Optional[int]:
        """Send ``shutdown``; with ``wait``, wait for the plugin to close and return the code."""
        await self.send({"type": "shutdown", "id": f"hub-{next(self._ids)}", "data": {"graceMs": grace_ms}})
        if wait:
            return await self.wait_closed(timeout=grace_ms / 1000 + 5)
        return None

    async def ping(self, timeout: float = 2.0) -> None:
        """Send a WebSocket ping and wait for the plugin's pong."""
        pong = await self.ws.ping()
        await asyncio.wait_for(pong, timeout)

    # -- waiting ------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[Dict[str, Any]], bool], timeout: float = 5.0, start: int = 0) -> Dict[str, Any]:
        """Wait for a message from the plugin that satisfies ``predicate`` (searching from
        index ``start`` of ``received``)."""
        assert self._changed is not None

        def find() -> Optional[Dict[str, Any]]:
            for m in self.received[start:]:
                if predicate(m):
                    return m
            return None

        async with self._changed:
            found = await asyncio.wait_for(self._changed.wait_for(find), timeout)
        return found  # type: ignore[return-value]

    async def wait_type(self, kind: str, timeout: float = 5.0, start: int = 0) -> Dict[str, Any]:
        return await self.wait_for(lambda m: m.get("type") == kind, timeout, start)

    async def wait_hello(self, timeout: float = 5.0) -> Dict[str, Any]:
        return await self.wait_type("hello", timeout)

    async def wait_closed(self, timeout: float = 5.0) -> Optional[int]:
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.close_code is not None), timeout)
        return self.close_code

    def messages(self, kind: str) -> List[Dict[str, Any]]:
        return [m for m in self.received if m.get("type") == kind]

    # -- the connection -----------------------------------------------------------------
    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def replayed(self, timeout: float = 120.0) -> Dict[str, Any]:
        """Wait until the transcript has been played to its end; what its ``$name``s were
        bound to. Raises ``logomesh.transcript.Mismatch`` naming the step the plugin did not
        follow."""
        assert self._replayed is not None, "start the hub first"
        return await asyncio.wait_for(asyncio.shield(self._replayed), timeout)

    async def _play(self, ws: Any) -> None:
        assert self._replayed is not None and self._transcript is not None
        self.ws = ws
        self.connections += 1
        try:
            bound = await _transcript.replay(ws, self._transcript)
        except BaseException as e:  # noqa: BLE001 - handed to replayed()
            if not self._replayed.done():
                self._replayed.set_exception(e)
            if isinstance(e, asyncio.CancelledError):
                raise
        else:
            if not self._replayed.done():
                self._replayed.set_result(bound)

    async def _handle(self, ws: Any) -> None:
        if self._transcript is not None:
            return await self._play(ws)
        if self.ws is not None and not self.ws.closed:
            # As the hub: a second connection replaces the first.
            await self.ws.close(1008, "replaced by a newer connection")
        self.ws = ws
        self.connections += 1
        self.close_code = None
        # A new connection starts with no subscriptions, as on the hub.
        self.subscriptions = set()
        self.request_path = ws.path
        self.request_headers = dict(ws.request_headers.raw_items())
        greeted = False
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await ws.send(json.dumps({"type": "error", "id": f"hub-{next(self._ids)}",
                                              "error": {"code": "LM_PROTOCOL", "message": "frame is not JSON"}}))
                    continue
                if not isinstance(msg, dict):
                    continue
                self.received.append(msg)
                if not greeted:
                    greeted = await self._on_hello(ws, msg)
                else:
                    await self._dispatch(ws, msg)
                await self._notify()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.ws is ws:
                self.close_code = ws.close_code
            await self._notify()

    async def _reply(self, ws: Any, cid: str, data: Any = None, error: Optional[Dict[str, Any]] = None) -> None:
        msg: Dict[str, Any] = {"type": "response", "id": f"hub-{next(self._ids)}", "correlationId": cid,
                               "timestamp": int(time.time() * 1000), "success": error is None}
        if error is None:
            msg["data"] = data
        else:
            msg["error"] = error
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(json.dumps(msg))

    async def _on_hello(self, ws: Any, msg: Dict[str, Any]) -> bool:
        rid = str(msg.get("id"))
        if msg.get("type") != "hello":
            await self._reply(ws, rid, error={"code": "LM_PROTOCOL", "message": "the first message must be hello"})
            return False
        if msg.get("protocol") != 1:
            await self._reply(ws, rid, error={"code": "LM_PROTOCOL", "message": "this hub speaks protocol 1", "details": {"supported": [1]}})
            return False
        methods = msg.get("methods") or []
        if self.exposes is not None:
            extra = [m for m in methods if m not in self.exposes]
            if extra:
                await self._reply(ws, rid, error={"code": "LM_PERMISSION_DENIED",
                                                  "message": f"methods not in coordination.exposesMethods: {', '.join(extra)}"})
                return False
        topics = msg.get("subscriptions") or []
        refused = [r for r in (self._refusal(t) for t in topics) if r]
        if refused:
            await self._reply(ws, rid, error={"code": "LM_PERMISSION_DENIED", "message": "; ".join(refused)})
            return False
        # Subscribed before the answer, as on the hub: the plugin is ready with them in place.
        self.subscriptions.update(str(t) for t in topics)
        self.hello = msg
        await self._reply(ws, rid, {"plugin": self.plugin_id, "protocol": 1})
        return True

    def _refusal(self, topic: Any) -> Optional[str]:
        """Why the hub would refuse a subscription to ``topic`` under ``subscribes`` (None: it
        would not)."""
        if self.subscribes is None or any(_covers(p, str(topic)) for p in self.subscribes):
            return None
        return (f"plugin {self.plugin_id} may not subscribe to '{topic}': no pattern under coordination.subscribes covers it "
                f"(listed: {', '.join(self.subscribes) or 'none'})")

    async def _dispatch(self, ws: Any, msg: Dict[str, Any]) -> None:
        kind = msg.get("type")
        rid = str(msg.get("id"))
        if kind == "response":
            fut = self._pending.pop(str(msg.get("correlationId")), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind == "request":
            task = asyncio.get_running_loop().create_task(self._serve_call(ws, msg))
            self._conn_tasks.add(task)
            task.add_done_callback(self._conn_tasks.discard)
        elif kind in ("event", "broadcast"):
            if not self.messaging:
                await ws.send(json.dumps({"type": "error", "id": f"hub-{next(self._ids)}", "correlationId": rid,
                                          "error": {"code": "LM_PERMISSION_DENIED", "message": "coordination.messaging is false"}}))
        elif kind == "subscribe":
            refused = self._refusal(msg.get("topic"))
            if refused:
                await self._reply(ws, rid, error={"code": "LM_PERMISSION_DENIED", "message": refused})
                return
            self.subscriptions.add(str(msg.get("topic")))
            await self._reply(ws, rid, {"topic": msg.get("topic")})
        elif kind == "unsubscribe":
            self.subscriptions.discard(str(msg.get("topic")))
            await self._reply(ws, rid, {"topic": msg.get("topic")})
        else:
            await self._reply(ws, rid, error={"code": "LM_PROTOCOL", "message": f"unknown message type {kind!r}"})

    async def _serve_call(self, ws: Any, msg: Dict[str, Any]) -> None:
        rid = str(msg.get("id"))
        target = (msg.get("to") or ["?"])[0]
        method = msg.get("method")
        key = method if target == "host" else f"{target}.{method}"
        handler = self._methods.get(key)  # type: ignore[arg-type]
        if handler is None:
            code = "LM_METHOD_NOT_FOUND" if target == "host" else "LM_PLUGIN_UNAVAILABLE"
            await self._reply(ws, rid, error={"code": code, "message": f"the fake hub serves no {key}"})
            return
        timeout = msg.get("timeout") if isinstance(msg.get("timeout"), (int, float)) else 30_000
        data = msg.get("data")

        async def invoke() -> Any:
            if isinstance(data, dict):
                result = handler(**data)
            elif data is None:
                result = handler()
            else:
                result = handler(data)
            if inspect.isawaitable(result):
                result = await result
            return result

        try:
            result = await asyncio.wait_for(invoke(), timeout / 1000)
        except asyncio.TimeoutError:
            await self._reply(ws, rid, error={"code": "LM_TIMEOUT", "message": f"{key} did not answer within {timeout} ms"})
            return
        except LogoMeshError as e:
            await self._reply(ws, rid, error=e.to_wire())
            return
        except Exception as e:  # noqa: BLE001 - a fake callee's failure becomes its answer
            await self._reply(ws, rid, error={"code": "LM_PLUGIN_ERROR", "message": str(e)})
            return
        if result is NO_REPLY:
            return
        await self._reply(ws, rid, result)


def _covers(declared: str, target: str) -> bool:
    """Does a declared pattern cover ``target`` (a topic or a pattern) whole, as the hub
    checks a subscription against the manifest? ``a.*`` covers ``a.b`` and ``a.b.*``; only
    ``*`` covers ``*``."""
    if declared == "*":
        return True
    if target == "*":
        return False
    if declared.endswith(".*"):
        return target.startswith(declared[:-1])
    return declared == target
