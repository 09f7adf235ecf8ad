"""Frames out of a WebSocket client: writes on the event loop, writes straight to the socket
from a worker thread (a plain def handler's answer), the backlog a partial write leaves, the
transport's flow control, and the close handshake. WebSocketClient (_ws.py) is built on it;
the attributes below are set by its __init__."""
from __future__ import annotations

import asyncio
import os
import struct
import threading
from typing import Optional

from ._ws_frames import OP_BINARY, OP_CLOSE, OP_TEXT, frame, mask, mask_key
from .protocol import TextFrame


class FrameWriter:
    """The writing half of :class:`WebSocketClient`: a mixin, with no state of its own."""

    _loop: asyncio.AbstractEventLoop
    _transport: Optional[asyncio.Transport]
    _closed: asyncio.Future
    _paused: bool
    _drain_waiters: list
    _wlock: threading.RLock
    _backlog: Optional[list]
    _fd: int
    binary: bool
    open: bool
    close_sent: bool


    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    # -- frames out ---------------------------------------------------------------------
    def _write_frame(self, opcode: int, payload: bytes) -> None:
        t = self._transport
        if t is None or t.is_closing():
            return
        self._write(t, frame(opcode, payload))

    def _write(self, t: asyncio.Transport, data: bytes) -> None:
        """On the loop: write after whatever a worker's partial send left."""
        with self._wlock:
            if self._backlog is not None:
                self._backlog.append(data)
            else:
                t.write(data)

    def _data_frame(self, payload: bytes) -> bytes:
        # A TextFrame (protocol.py) stays text on a msgpack connection.
        op = 0x80 | (OP_BINARY if self.binary and not isinstance(payload, TextFrame) else OP_TEXT)
        n = len(payload)
        if n < 126:
            header = bytes((op, 0x80 | n))
        elif n < 65536:
            header = struct.pack("!BBH", op, 0xFE, n)
        else:
            header = struct.pack("!BBQ", op, 0xFF, n)
        key = mask_key()
        return header + key + mask(payload, key)

    def send_text(self, payload: bytes) -> bool:
        """Queue one message: a text frame (UTF-8 JSON), or a binary one (msgpack) once ``binary``
        is set. False when the connection is not open."""
        t = self._transport
        if not self.open or self.close_sent or t is None or t.is_closing():
            return False
        self._write(t, self._data_frame(payload))
        return True

    def allow_thread_writes(self) -> None:
        """Let send_from_thread write to this connection's socket (a Unix socket's: never
        through TLS, which only the transport can write)."""
        t = self._transport
        sock = t.get_extra_info("socket") if t is not None and self.open and not t.is_closing() else None
        if sock is not None and t.get_extra_info("sslcontext") is None:
            self._fd = sock.fileno()

    def send_from_thread(self, payload: bytes) -> bool:
        """From a worker thread: write one message straight to the socket when nothing is
        queued before it, so the answer of a plain def handler leaves without waking the
        event loop (on a busy host each wake-up may wait for a CPU). False when it cannot
        (nothing written): the caller hands the message to the loop."""
        data = self._data_frame(payload)
        with self._wlock:
            t = self._transport
            if (self._fd < 0 or not self.open or self.close_sent or t is None or t.is_closing() or self._paused
                    or self._backlog is not None or t.get_write_buffer_size() > 0):
                return False
            try:
                n = os.write(self._fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                return False  # the loop's write will meet the same error and close
            if n < len(data):
                # The rest goes first, through the loop, and every write until then after it.
                self._backlog = [data[n:]]
                self._loop.call_soon_threadsafe(self._flush_backlog)
        return True

    def _flush_backlog(self) -> None:
        with self._wlock:
            backlog, self._backlog = self._backlog, None
            t = self._transport
            if backlog and t is not None and not t.is_closing():
                t.write(b"".join(backlog))

    @property
    def writing_paused(self) -> bool:
        return self._paused

    async def drain(self) -> None:
        """Wait until the kernel takes what is queued, when the write buffer is full."""
        if not self._paused or self._transport is None or self._transport.is_closing():
            return
        w = self._loop.create_future()
        self._drain_waiters.append(w)
        await w

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Close handshake: send a close frame, wait for the server's, then drop the socket."""
        t = self._transport
        if t is not None and not t.is_closing():
            if not self.close_sent:
                self._write_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
                self.close_sent = True
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), timeout)
            except asyncio.TimeoutError:
                pass
            t.close()
        if not self._closed.done():
            await asyncio.shield(self._closed)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
