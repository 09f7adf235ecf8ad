"""The hub protocol's constants and its codec: JSON frames in and out, within the depth and
size limits (docs/protocol.md). The constants mirror images/protocol/protocol.json of
LogoMesh; the SDK's tests check that they match it."""
from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Dict, Union

VERSION = "0.1.0"
SDK = f"python/{VERSION}"
PROTOCOL_VERSION = 1
#: The message types a client sends, and those the hub sends.
TO_HUB = ("hello", "request", "response", "event", "broadcast", "subscribe", "unsubscribe", "segment")
FROM_HUB = ("request", "response", "event", "broadcast", "shutdown", "error")
#: Arrays and objects nest at most this deep in a frame, the frame object itself being level 1.
MAX_DEPTH = 64
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
#: The largest maximum message size an operator may configure: the SDK's limit until the
#: hub announces its own in the answer to hello. A frame over it is not even read: the
#: connection closes with status 1009.
MAX_MESSAGE_BYTES = 16 << 20
#: The hub does not read a frame over this many times its maximum (it closes the connection).
HARD_LIMIT_FACTOR = 16
DEFAULT_CALL_TIMEOUT_MS = 30_000
MAX_CALL_TIMEOUT_MS = 300_000
ID_MAX_LENGTH = 128
#: The error codes that travel on the wire, and who sends them.
ERROR_CODES = {
    "LM_PROTOCOL": "hub, sdk",
    "LM_MESSAGE_TOO_LARGE": "hub, sdk",
    "LM_PERMISSION_DENIED": "hub",
    "LM_RATE_LIMITED": "hub",
    "LM_TIMEOUT": "hub, sdk",
    "LM_PLUGIN_UNAVAILABLE": "hub, sdk",
    "LM_PLUGIN_EXITED": "hub",
    "LM_PLUGIN_ERROR": "hub, sdk",
    "LM_METHOD_NOT_FOUND": "hub, sdk",
    "LM_INVALID_ARGUMENT": "sdk",
    "LM_CONTROLLER_UNAVAILABLE": "sdk",
    "LM_SEGMENT": "hub, sdk",
    "LM_MEMORY_QUOTA": "hub",
    "LM_SCHEMA": "hub",
}

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TARGET = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
TOPIC = re.compile(r"^(?:\*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$")

Bytes = Union[bytes, bytearray]


def topic_matches(pattern: str, topic: str) -> bool:
    """Does a subscription pattern (``a.b``, ``a.*``, ``*``) match a topic?"""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return topic.startswith(pattern[:-1])
    return pattern == topic


class FrameRefused(Exception):
    """A frame from the hub that the SDK will not handle: too large, too deep, or not JSON.

    ``fields`` holds its top-level ``type``, ``id`` and ``correlationId`` when they could be
    read, so that a refused request can still be answered."""

    def __init__(self, code: str, message: str, fields: Dict[str, str]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields


class EncodeError(Exception):
    """A message that cannot be sent: not JSON (or a cycle), too deep, or too large."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


# A JSON string, or an unterminated one running to the end (so that scanning stays linear
# whatever the bytes are).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}:,]', re.DOTALL)
_WANTED = {b'"type"': "type", b'"id"': "id", b'"correlationId"': "correlationId"}


def depth(payload: Bytes) -> int:
    """How deep arrays and objects nest in a JSON text (strings skipped): exact when over
    MAX_DEPTH; otherwise a bound no greater than MAX_DEPTH (a text with at most that many
    opening brackets is not scanned at all)."""
    opening = payload.count(b"[") + payload.count(b"{")
    if opening <= MAX_DEPTH:
        return opening
    # C-speed passes: drop strings, keep only brackets, take the highest running sum.
    brackets = _STRING.sub(b"", payload).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def top_fields(payload: Bytes) -> Dict[str, str]:
    """The string values of ``type``, ``id`` and ``correlationId`` at the top level of a
    frame, read without parsing it (it may be too deep or too large to parse)."""
    found: Dict[str, str] = {}
    level = 0
    state = 0  # at level 1: 0 nothing, 1 a key may come, 2 a ':' may come, 3 a value may come
    key = None
    for m in _TOKEN.finditer(payload):
        tok = m.group()
        c = tok[0]
        if c == 0x22:  # a string
            if level == 1 and state == 1:
                key, state = _WANTED.get(tok), 2
            elif level == 1 and state == 3:
                if key is not None and key not in found:
                    try:
                        value = json.loads(tok)
                    except ValueError:
                        value = None
                    if isinstance(value, str):
                        found[key] = value
                state = 0
            continue
        if c in (0x5B, 0x7B):  # [ {
            level += 1
            if level == 1 and c == 0x7B:
                state = 1
            elif level == 2:
                state = 0
        elif c in (0x5D, 0x7D):  # ] }
            level -= 1
        elif level == 1 and c == 0x3A:  # :
            state = 3 if state == 2 else 0
        elif level == 1 and c == 0x2C:  # ,
            state = 1
    return found


def decode(payload: Bytes, max_bytes: int) -> Any:
    """One frame from the hub as a Python value. Raises FrameRefused when it is larger than
    ``max_bytes``, nested deeper than MAX_DEPTH, or not JSON."""
    size = len(payload)
    if size > max_bytes:
        raise FrameRefused("LM_MESSAGE_TOO_LARGE", f"a message of {size} bytes exceeds the maximum message size of {max_bytes} bytes",
                           top_fields(payload))
    levels = depth(payload)
    if levels > MAX_DEPTH:
        raise FrameRefused("LM_PROTOCOL", f"a message nested {levels} levels deep exceeds the maximum depth of {MAX_DEPTH}",
                           top_fields(payload))
    try:
        if payload[:1] == b"{" and size > 1 and payload[1]:
            # What json.loads does with such bytes (detect_encoding says UTF-8), without
            # its Python steps: every frame the hub sends is an object.
            return _decoder.decode(payload.decode("utf-8", "surrogatepass"))
        return json.loads(payload)
    except (ValueError, RecursionError) as e:
        raise FrameRefused("LM_PROTOCOL", f"a message that is not JSON: {e}", top_fields(payload)) from None


_decoder = json.JSONDecoder()
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(msg: Any, max_bytes: int, binary: bool = False) -> bytes:
    """A message as the UTF-8 JSON text of one frame, or its msgpack bytes once the hub agreed
    to binary frames (``binary``). Raises EncodeError when it is not JSON (a cycle, NaN, an
    object JSON has no form for), nested deeper than MAX_DEPTH, or larger than ``max_bytes``."""
    if binary and not holds_unsafe_integer(msg):
        return _encode_binary(msg, max_bytes)
    try:
        text = _encoder.encode(msg).encode("utf-8")
    except RecursionError:
        raise EncodeError(f"is nested deeper than {MAX_DEPTH} levels") from None
    except Exception as e:  # noqa: BLE001 - TypeError, ValueError, or whatever a dict subclass raises
        raise EncodeError(f"is not JSON: {e}") from None
    levels = depth(text)
    if levels > MAX_DEPTH:
        raise EncodeError(f"is nested {levels} levels deep, over the maximum depth of {MAX_DEPTH}")
    if len(text) > max_bytes:
        raise EncodeError(f"is {len(text)} bytes, over the maximum message size of {max_bytes} bytes", too_large=True)
    return TextFrame(text) if binary else text


class TextFrame(bytes):
    """JSON text to send as a text frame on a connection that speaks msgpack: a message with a
    whole number past 2^53, which the hub refuses in a binary frame."""


_SAFE = (1 << 53) - 1  # JavaScript's Number.MAX_SAFE_INTEGER, as the hub checks


def holds_unsafe_integer(msg: Any) -> bool:
    """Does the message hold a whole number past 2^53 (an int, or a float such as 1e20: the hub
    reads every whole number as an integer)? Iterative; cycles and depth are the encoders' to refuse."""
    stack = [msg]
    seen = 0
    while stack:
        v = stack.pop()
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            if v > _SAFE or v < -_SAFE:
                return True
        elif isinstance(v, float):
            if v == v and v not in (float("inf"), float("-inf")) and v.is_integer() and abs(v) > _SAFE:
                return True
        elif isinstance(v, dict):
            seen += 1
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            seen += 1
            stack.extend(v)
        if seen > 1_000_000:
            return False  # a cycle or a huge value: the encoders refuse or send it
    return False


def _encode_binary(msg: Any, max_bytes: int) -> bytes:
    import msgpack

    levels = value_depth(msg, MAX_DEPTH)
    if levels > MAX_DEPTH:
        raise EncodeError(f"is nested deeper than {MAX_DEPTH} levels")
    try:
        data = msgpack.packb(msg, use_bin_type=True)
    except Exception as e:  # noqa: BLE001 - TypeError, OverflowError, ValueError
        raise EncodeError(f"cannot be sent as msgpack: {e}") from None
    if len(data) > max_bytes:
        raise EncodeError(f"is {len(data)} bytes, over the maximum message size of {max_bytes} bytes", too_large=True)
    return data


def value_depth(value: Any, limit: int) -> int:
    """The nesting of lists and dicts in a value, the value itself being level 1, counted
    without recursion; stops past ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if not isinstance(v, (dict, list, tuple)):
            continue
        if d > deepest:
            deepest = d
            if deepest > limit:
                return deepest
        stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def decode_binary(payload: Bytes, max_bytes: int) -> Any:
    """A binary (msgpack) frame from the hub, within the same limits as a text one."""
    import msgpack

    if len(payload) > max_bytes:
        raise FrameRefused("LM_MESSAGE_TOO_LARGE", f"a message of {len(payload)} bytes exceeds the maximum message size of {max_bytes} bytes", {})
    try:
        # The C unpacker keeps its own bounded stack: no recursion in Python, whatever the nesting.
        msg = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as e:  # noqa: BLE001 - every msgpack failure
        raise FrameRefused("LM_PROTOCOL", f"a binary frame that is not msgpack: {e}", {}) from None
    if value_depth(msg, MAX_DEPTH) > MAX_DEPTH:
        raise FrameRefused("LM_PROTOCOL", f"a message nested more than {MAX_DEPTH} levels deep", {})
    return msg
