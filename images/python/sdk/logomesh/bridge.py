"""The data bridge (docs/data-bridge.md): structured data in a segment, in one of three
formats every SDK reads and writes byte for byte alike.

A structured segment starts with a 16-byte header: ``LMSD``, version 1, the format (1 json,
2 msgpack, 3 protobuf), two zero bytes, and the payload's length (uint64, little-endian).
Maps are written with their keys in code point order in every format, so that the same
value gives the same bytes in every language. Format protobuf carries a google.protobuf.Value,
or a declared message type (``message_type=`` and ``types=``, see protobuf_types.py).
"""
from __future__ import annotations

import json
import math
import struct
from typing import Any, Optional, Tuple

from .errors import LogoMeshError

HEADER = struct.Struct("<4sBBHQ")
MAGIC = b"LMSD"
FORMATS = {"json": 1, "msgpack": 2, "protobuf": 3}
NAMES = {v: k for k, v in FORMATS.items()}


def _format(fmt: str) -> int:
    code = FORMATS.get(fmt)
    if code is None:
        raise LogoMeshError("LM_INVALID_ARGUMENT", f"format {fmt!r} is not one of json, msgpack, protobuf")
    return code


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise LogoMeshError("LM_INVALID_ARGUMENT", f"map keys must be strings, found {type(k).__name__}")
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    return value


def _check_json(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise LogoMeshError("LM_INVALID_ARGUMENT", "json cannot carry NaN or infinities; use msgpack or protobuf")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise LogoMeshError("LM_INVALID_ARGUMENT", "json cannot carry binary data; use msgpack")
    if isinstance(value, dict):
        for v in value.values():
            _check_json(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_json(v)


def _to_pb(value: Any) -> Any:
    from google.protobuf import struct_pb2

    v = struct_pb2.Value()
    if value is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, (int, float)):
        v.number_value = float(value)
    elif isinstance(value, str):
        v.string_value = value
    elif isinstance(value, dict):
        s = v.struct_value
        s.SetInParent()
        for k in sorted(value):
            if not isinstance(k, str):
                raise LogoMeshError("LM_INVALID_ARGUMENT", "map keys must be strings")
            s.fields[k].CopyFrom(_to_pb(value[k]))
    elif isinstance(value, (list, tuple)):
        lv = v.list_value
        lv.SetInParent()
        for x in value:
            lv.values.add().CopyFrom(_to_pb(x))
    else:
        raise LogoMeshError("LM_INVALID_ARGUMENT", f"protobuf (google.protobuf.Value) cannot carry {type(value).__name__}; use msgpack")
    return v


def _from_pb(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "null_value" or kind is None:
        return None
    if kind == "bool_value":
        return v.bool_value
    if kind == "number_value":
        return v.number_value
    if kind == "string_value":
        return v.string_value
    if kind == "struct_value":
        return {k: _from_pb(x) for k, x in v.struct_value.fields.items()}
    return [_from_pb(x) for x in v.list_value.values]


def _message(code: int, message_type: Optional[str], types: Any) -> bool:
    """A declared message type (protobuf_types.py) goes with format protobuf and its descriptor set."""
    if message_type is None:
        return False
    if code != 3:
        raise LogoMeshError("LM_INVALID_ARGUMENT", f"a message type ({str(message_type)[:128]}) goes with format protobuf only")
    if types is None:
        raise LogoMeshError("LM_INVALID_ARGUMENT", f"message type {str(message_type)[:128]} needs types=ProtobufTypes.load(<descriptor set>)")
    return True


def encode(value: Any, fmt: str, message_type: Optional[str] = None, types: Any = None) -> bytes:
    """The payload of ``value`` in ``fmt`` (no header); for protobuf, as the message
    ``message_type`` of ``types`` (a ProtobufTypes) when one is named, else a google.protobuf.Value."""
    code = _format(fmt)
    if _message(code, message_type, types):
        return types.encode(message_type, value)
    if code == 1:
        _check_json(value)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    if code == 2:
        import msgpack

        return msgpack.packb(_sorted(value), use_bin_type=True)
    return _to_pb(value).SerializeToString(deterministic=True)


def decode(payload: Any, fmt: str, message_type: Optional[str] = None, types: Any = None) -> Any:
    code = _format(fmt)
    if _message(code, message_type, types):
        return types.decode(message_type, payload)
    if code == 1:
        return json.loads(bytes(payload).decode())
    if code == 2:
        import msgpack

        return msgpack.unpackb(payload, raw=False, strict_map_key=True)
    from google.protobuf import struct_pb2

    v = struct_pb2.Value()
    v.ParseFromString(bytes(payload))
    return _from_pb(v)


def frame(value: Any, fmt: str, message_type: Optional[str] = None, types: Any = None) -> bytes:
    """Header and payload, as written into a segment."""
    payload = encode(value, fmt, message_type, types)
    return HEADER.pack(MAGIC, 1, FORMATS[fmt], 0, len(payload)) + payload


def unframe(buf: Any, fmt: Any = None, message_type: Optional[str] = None, types: Any = None) -> Tuple[Any, str]:
    """The value a structured segment holds, and its format. ``fmt``, when given, must match."""
    if len(buf) < HEADER.size:
        raise LogoMeshError("LM_SEGMENT", "the segment is too small to hold structured data")
    magic, version, code, _, length = HEADER.unpack_from(buf, 0)
    if magic != MAGIC or version != 1 or code not in NAMES:
        raise LogoMeshError("LM_SEGMENT", "the segment holds no structured data (no LMSD header)")
    if fmt is not None and FORMATS.get(fmt) != code:
        raise LogoMeshError("LM_SEGMENT", f"the segment holds {NAMES[code]}, not {fmt}")
    if HEADER.size + length > len(buf):
        raise LogoMeshError("LM_SEGMENT", f"the header says {length} bytes of data; the segment has {len(buf) - HEADER.size}")
    view = memoryview(buf)[HEADER.size:HEADER.size + length]
    return decode(view, NAMES[code], message_type, types), NAMES[code]
