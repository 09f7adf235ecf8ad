"""A small WebSocket client (RFC 6455) over a Unix socket or TCP, on asyncio's Protocol API.

Only what the hub protocol needs: the HTTP upgrade, text frames out (masked, as a client
must), text frames in (fragmented or not), ping -> pong, and the close handshake. Frames
are parsed straight from the bytes the event loop hands over, with no stream readers and no
per-frame tasks, which keeps a message's cost in the microseconds.

The client in parts: this module (the connection, frames in, connect), _ws_writer.py
(frames out, writes from worker threads, the close handshake), _ws_handshake.py (the HTTP
upgrade and its refusals) and _ws_frames.py (opcodes, the mask, a whole frame).
"""
from __future__ import annotations

import asyncio
import base64
import os
import ssl
import struct
import threading
from typing import Callable, Dict, Optional

from ._ws_frames import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT
# _frame and _mask by their old names: the SDK's tests (tests/test_ws.py) check them here.
from ._ws_frames import frame as _frame, mask as _mask  # noqa: F401
from ._ws_handshake import MAX_HANDSHAKE, HandshakeError, check_handshake, refusal, upgrade_request
from ._ws_writer import FrameWriter


#: The one read buffer of a connection: the transport reads into it (recv_into), so no
#: read allocates. asyncio's plain Protocol reads with recv(256 KiB): a fresh 256 KiB bytes
#: object a read, which the allocator maps, shrinks and unmaps (three system calls and a
#: page fault per frame, measured with strace on an echo plugin).
READ_BUFFER = 64 * 1024


class WebSocketClient(FrameWriter, asyncio.BufferedProtocol):
    """One client connection. Create it with :func:`connect`.

    ``on_message(payload)`` is called on the event loop with the raw bytes of every text
    message; ``on_close(code, reason)`` once, when the connection is gone. A message over
    ``max_size`` bytes (when set) is not read: the connection closes with status 1009.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_message: Callable[[bytearray], None],
                 on_close: Callable[[Optional[int], str], None], host: str, path: str,
                 max_size: Optional[int] = None, headers: Optional[Dict[str, str]] = None) -> None:
        self._loop = loop
        self._on_message = on_message
        #: Where binary (msgpack) frames go, once the plugin offered them; None ignores them.
        self.on_binary: Optional[Callable[[bytearray], None]] = None
        #: Send messages as binary frames (the hub agreed to msgpack in its answer to hello).
        self.binary = False
        self._on_close = on_close
        self._host = host
        self._path = path
        self._headers = headers or {}
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._rview: Optional[memoryview] = None
        self._upgraded = False
        self._opened: asyncio.Future = loop.create_future()
        self._closed: asyncio.Future = loop.create_future()
        self._fragments: Optional[list] = None
        self._fragment_op = 0
        self._fragment_size = 0
        self.max_size = max_size
        self._transport: Optional[asyncio.Transport] = None
        self._paused = False
        self._drain_waiters: list = []
        self.close_sent = False
        # Frames written by worker threads straight to the socket (send_from_thread): every
        # write holds this lock, and what a partial send left is queued before anything else.
        self._wlock = threading.RLock()  # re-entrant: a transport may call back into this protocol while writing
        self._backlog: Optional[list] = None
        self._fd = -1
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.open = False

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.write(upgrade_request(self._path, self._host, self._key, self._headers))  # type: ignore[attr-defined]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._rview is None:
            self._rview = memoryview(bytearray(READ_BUFFER))
        return self._rview

    def buffer_updated(self, nbytes: int) -> None:
        # Copied into _buf at once (data_received's first step): the view is read into again.
        assert self._rview is not None
        self.data_received(self._rview[:nbytes])

    def data_received(self, data: "bytes | memoryview") -> None:
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HANDSHAKE:
                    self._fail_handshake("the upgrade response is too long")
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            problem = check_handshake(head, self._key)
            if problem:
                self._fail_handshake(problem, *refusal(head, bytes(buf)))
                return
            self._upgraded = True
            self.open = True
            if not self._opened.done():
                self._opened.set_result(None)
        if buf:
            self._parse()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        # asyncio closes the socket only after this returns: no worker writes to it after.
        with self._wlock:
            self._fd = -1
        was_open = self.open
        self.open = False
        if self.close_code is None:
            self.close_code = 1006  # closed without a close frame (RFC 6455 7.1.5)
        if not self._opened.done():
            self._opened.set_exception(ConnectionError(f"connection closed during the upgrade: {exc or 'EOF'}"))
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()
        if not self._closed.done():
            self._closed.set_result(None)
        if was_open or self._upgraded:
            self._on_close(self.close_code, self.close_reason)

    # -- handshake ----------------------------------------------------------------------
    def _fail_handshake(self, why: str, status: Optional[int] = None, code: Optional[str] = None) -> None:
        if not self._opened.done():
            self._opened.set_exception(HandshakeError(why, status, code))
        if self._transport is not None:
            self._transport.close()

    # -- frames in ----------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2: pos + 10], "big")
                start = pos + 10
            if b1 & 0x80:
                # A server must not mask its frames (RFC 6455 5.1).
                self._protocol_error("the server sent a masked frame")
                return
            limit = self.max_size
            if limit is not None and length + (self._fragment_size if self._fragments is not None else 0) > limit:
                # Not even buffered: a peer could otherwise make this process hold any size.
                self._protocol_error(f"a message over {limit} bytes", 1009)
                return
            end = start + length
            if end > n:
                break
            payload = buf[start:end]
            pos = end
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if self._fragments is not None:
                    self._protocol_error("a new message started inside a fragmented one")
                    return
                if fin:
                    if opcode == OP_TEXT:
                        self._deliver(payload)
                    else:
                        self._deliver_binary(payload)
                else:
                    self._fragments = [payload]
                    self._fragment_op = opcode
                    self._fragment_size = len(payload)
            elif opcode == OP_CONT:
                if self._fragments is None:
                    self._protocol_error("a continuation frame outside a fragmented message")
                    return
                self._fragments.append(payload)
                self._fragment_size += len(payload)
                if fin:
                    whole = bytearray().join(self._fragments)
                    self._fragments = None
                    if self._fragment_op == OP_TEXT:
                        self._deliver(whole)
                    else:
                        self._deliver_binary(whole)
            elif opcode == OP_PING:
                self._write_frame(OP_PONG, bytes(payload))
            elif opcode == OP_PONG:
                pass
            elif opcode == OP_CLOSE:
                self._received_close(bytes(payload))
                pos = n
                break
            else:
                self._protocol_error(f"unknown opcode {opcode}")
                return
            if self._transport is None or self._transport.is_closing():
                pos = n
                break
        if pos:
            del buf[:pos]

    def _deliver(self, payload: bytearray) -> None:
        try:
            self._on_message(payload)
        except Exception:  # the callback guards itself; never let it break parsing
            import traceback
            traceback.print_exc()

    def _deliver_binary(self, payload: bytearray) -> None:
        # Only once the plugin offered binary frames in hello (on_binary set); ignored otherwise.
        if self.on_binary is None:
            return
        try:
            self.on_binary(payload)
        except Exception:  # the callback guards itself; never let it break parsing
            import traceback
            traceback.print_exc()

    def _received_close(self, payload: bytes) -> None:
        if len(payload) >= 2:
            self.close_code = (payload[0] << 8) | payload[1]
            self.close_reason = payload[2:].decode("utf-8", "replace")
        else:
            self.close_code = 1005
        self.open = False
        if not self.close_sent:
            code = self.close_code if self.close_code not in (1005, 1006, None) else 1000
            self._write_frame(OP_CLOSE, struct.pack("!H", code))
            self.close_sent = True
        if self._transport is not None:
            self._transport.close()

    def _protocol_error(self, why: str, code: int = 1002) -> None:
        self.close_reason = why
        self.close_code = code
        if not self.close_sent and self._transport is not None and not self._transport.is_closing():
            self._write_frame(OP_CLOSE, struct.pack("!H", code) + why.encode()[:120])
            self.close_sent = True
        self.open = False
        if self._transport is not None:
            self._transport.close()


async def connect_tcp(host: str, port: int, on_message: Callable[[bytearray], None], on_close: Callable[[Optional[int], str], None],
                      *, host_header: str, resource: str = "/v1", timeout: float = 10.0, max_size: Optional[int] = None,
                      headers: Optional[Dict[str, str]] = None, ssl_context: Optional[ssl.SSLContext] = None) -> WebSocketClient:
    """Connect to a hub across nodes over TCP (TLS with ``ssl_context``) and finish the upgrade.
    Straight to the host: this client never goes through HTTP_PROXY or HTTPS_PROXY, which
    name the plugin's egress proxy, not a way to its hub."""
    loop = asyncio.get_running_loop()
    proto = WebSocketClient(loop, on_message, on_close, host_header, resource, max_size, headers)
    await asyncio.wait_for(loop.create_connection(lambda: proto, host, port, ssl=ssl_context,
                                                  server_hostname=host if ssl_context else None), timeout)
    try:
        await asyncio.wait_for(asyncio.shield(proto._opened), timeout)
    except BaseException:
        proto.abort()
        raise
    return proto


async def connect(path: str, on_message: Callable[[bytearray], None], on_close: Callable[[Optional[int], str], None],
                  *, host: str = "logomesh", resource: str = "/v1", timeout: float = 10.0,
                  max_size: Optional[int] = None) -> WebSocketClient:
    """Connect to a WebSocket server on the Unix socket at ``path`` and finish the upgrade."""
    loop = asyncio.get_running_loop()
    proto = WebSocketClient(loop, on_message, on_close, host, resource, max_size)
    await asyncio.wait_for(loop.create_unix_connection(lambda: proto, path), timeout)
    try:
        await asyncio.wait_for(asyncio.shield(proto._opened), timeout)
    except BaseException:
        proto.abort()
        raise
    proto.allow_thread_writes()
    return proto
