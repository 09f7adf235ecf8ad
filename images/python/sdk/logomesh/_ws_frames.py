"""WebSocket frames (RFC 6455) as a client writes them: the opcodes, the mask, and a whole
masked frame. What every frame the SDK sends goes through; the parser of frames in is
WebSocketClient._parse (_ws.py)."""
from __future__ import annotations

import collections
import os
import struct
from typing import Deque

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    # One big-integer XOR instead of a Python loop over the bytes.
    mask = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(n, "little")


#: Mask keys drawn from os.urandom 1,024 at a time, each used once. One os.urandom per
#: frame was a getrandom(2) system call per frame, during which a worker thread let go of the
#: GIL and the loop's thread took it: one more hand-over of the GIL, and a wake-up, per call.
_KEYS_AT_ONCE = 1024
_keys: Deque[bytes] = collections.deque()


def mask_key() -> bytes:
    """A new random 4-byte mask key. Safe from any thread: deque.popleft is atomic, and two
    threads refilling at once only add keys, never hand one out twice."""
    try:
        return _keys.popleft()
    except IndexError:
        block = os.urandom(4 * _KEYS_AT_ONCE)
        _keys.extend(block[i:i + 4] for i in range(4, len(block), 4))
        return block[:4]


def frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    key = mask_key()
    return header + key + mask(payload, key)

