"""Declared protobuf message types for the data bridge (docs/data-bridge.md#declared-message-types).

The messages of a binary FileDescriptorSet (``protoc --include_imports --descriptor_set_out``)
through python3-protobuf: ``descriptor_pool``, ``message_factory`` and ``json_format``. A value
maps to a message the proto3 JSON way: field json names (or proto names), 64-bit integers as
decimal strings, bytes as base64, enums by name; decoding gives that canonical JSON, fields at
their default value omitted. A value that does not fit the type is ``LM_INVALID_ARGUMENT``,
worded as in every SDK: ``protobuf <type>: <JSON path>: expected <what>, found <what>``.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List

from .errors import LogoMeshError

MAX_DESCRIPTOR_SET_BYTES = 1024 * 1024
_INTEGER = re.compile(r"^-?[0-9]+$")

# FieldDescriptor.TYPE_* numbers (descriptor.proto) and the names proto files use.
_SCALARS = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
            8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64",
            17: "sint32", 18: "sint64"}
_MESSAGE, _ENUM, _REPEATED = 11, 14, 3


class ProtobufTypes:
    """The message types of one descriptor set. ``ProtobufTypes.load(path)`` or ``ProtobufTypes(data)``."""

    def __init__(self, data: bytes, source: str = "the descriptor set") -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool

        if len(data) > MAX_DESCRIPTOR_SET_BYTES:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"{source}: expected a FileDescriptorSet of at most {MAX_DESCRIPTOR_SET_BYTES} bytes, found {len(data)} bytes")
        try:
            fds = descriptor_pb2.FileDescriptorSet()
            fds.ParseFromString(bytes(data))
            pool = descriptor_pool.DescriptorPool()
            for f in fds.file:  # protoc writes them imports first
                pool.Add(f)
        except Exception as err:  # the library raises several kinds
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"{source}: expected a FileDescriptorSet (protoc --include_imports --descriptor_set_out), found bytes that are not one ({err})") from None
        self._pool = pool
        self._names = sorted(m for f in fds.file for m in _message_names(f.package, f.message_type))
        self._classes: Dict[str, Any] = {}

    @classmethod
    def load(cls, path: str) -> "ProtobufTypes":
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_DESCRIPTOR_SET_BYTES + 1)
        except OSError as err:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"{path}: expected a descriptor set file, found {err.strerror or err}") from None
        return cls(data, path)

    def message_names(self) -> List[str]:
        return list(self._names)

    def _class(self, type_name: str) -> Any:
        cls = self._classes.get(type_name)
        if cls is None:
            from google.protobuf import message_factory

            try:
                desc = self._pool.FindMessageTypeByName(type_name)
            except KeyError:
                raise LogoMeshError("LM_INVALID_ARGUMENT", f"protobuf: expected a message type the descriptor set declares, found {str(type_name)[:128]!r}") from None
            get = getattr(message_factory, "GetMessageClass", None)
            cls = get(desc) if get else message_factory.MessageFactory(self._pool).GetPrototype(desc)
            self._classes[type_name] = cls
        return cls

    def encode(self, type_name: str, value: Any) -> bytes:
        """``value`` (proto3 JSON) as the binary message ``type_name``, deterministic (map entries by key)."""
        from google.protobuf import json_format

        cls = self._class(type_name)
        _walk_message(cls.DESCRIPTOR, value, "", type_name)
        msg = cls()
        try:
            json_format.ParseDict(value, msg)
        except json_format.ParseError as err:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"protobuf {type_name}: {err}") from None
        return msg.SerializeToString(deterministic=True)

    def decode(self, type_name: str, data: Any) -> Any:
        """The message ``type_name`` in ``data``, as proto3 JSON."""
        from google.protobuf import json_format
        from google.protobuf.message import DecodeError

        msg = self._class(type_name)()
        try:
            msg.ParseFromString(bytes(data))
        except DecodeError as err:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"protobuf {type_name}: expected the bytes of a {type_name}, found bytes that are not one ({err})") from None
        return json_format.MessageToDict(msg)


def _message_names(prefix: str, messages: Any) -> List[str]:
    out = []
    for m in messages:
        name = f"{prefix}.{m.name}" if prefix else m.name
        if not m.options.map_entry:
            out.append(name)
        out.extend(_message_names(name, m.nested_type))
    return out


def shown(v: Any) -> str:
    """The found part of the message, worded alike in every SDK."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"{'true' if v else 'false'} (boolean)"
    if isinstance(v, str):
        return f"{json.dumps(v if len(v) <= 64 else v[:64] + '...', ensure_ascii=False)} (string)"
    if isinstance(v, (int, float)):
        return f"{v} (number)"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "binary data"
    return "an object"


def _fail(root: str, path: str, expected: str, found: Any) -> None:
    raise LogoMeshError("LM_INVALID_ARGUMENT", f"protobuf {root}: {path or '/'}: expected {expected}, found {shown(found)}")


def _walk_message(desc: Any, v: Any, path: str, root: str) -> None:
    if desc.full_name.startswith("google.protobuf."):
        return  # their own JSON forms (Timestamp, Struct, ...): left to json_format
    if not isinstance(v, dict):
        _fail(root, path, f"an object (message {desc.full_name})", v)
    by_name = {}
    for f in desc.fields:
        by_name[f.json_name] = f
        by_name[f.name] = f
    for key, x in v.items():
        at = f"{path}/{key}"
        field = by_name.get(key)
        if field is None:
            _fail(root, at, f"a field of {desc.full_name}", key)
        if x is None:
            continue  # proto3 JSON: null is the field's default
        if field.label == _REPEATED and field.type == _MESSAGE and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if not isinstance(x, dict):
                _fail(root, at, f"an object (map of {_describe(value_field)})", x)
            for k, e in x.items():
                _walk_single(value_field, e, f"{at}/{k}", root)
        elif field.label == _REPEATED:
            if not isinstance(x, (list, tuple)):
                _fail(root, at, f"a list (repeated {_describe(field)})", x)
            for i, e in enumerate(x):
                _walk_single(field, e, f"{at}/{i}", root)
        else:
            _walk_single(field, x, at, root)
    for oneof in desc.oneofs:
        members = [f for f in oneof.fields if v.get(f.json_name) is not None or v.get(f.name) is not None]
        if len(members) > 1:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"protobuf {root}: {path or '/'}: expected at most one field of oneof {oneof.name}, found {' and '.join(f.json_name for f in members)}")


def _describe(field: Any) -> str:
    if field.type == _MESSAGE:
        return field.message_type.full_name
    if field.type == _ENUM:
        return field.enum_type.full_name
    return _SCALARS.get(field.type, "scalar")


def _is_integer(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    if isinstance(v, float):
        return v.is_integer()
    return isinstance(v, str) and _INTEGER.match(v) is not None


def _walk_single(field: Any, v: Any, path: str, root: str) -> None:
    t = field.type
    if t == _MESSAGE:
        _walk_message(field.message_type, v, path, root)
    elif t == _ENUM:
        names = [e.name for e in field.enum_type.values]
        if (isinstance(v, str) and v in names) or (isinstance(v, int) and not isinstance(v, bool)):
            return
        _fail(root, path, f"enum {field.enum_type.full_name} (one of {', '.join(names)}, or a number)", v)
    elif t == 8:
        if not isinstance(v, bool):
            _fail(root, path, "bool (true or false)", v)
    elif t == 9:
        if not isinstance(v, str):
            _fail(root, path, "string", v)
    elif t == 12:
        if not isinstance(v, str):
            _fail(root, path, "bytes (a base64 string)", v)
    elif t in (1, 2):
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            _fail(root, path, f"{_SCALARS[t]} (a number)", v)
    elif not _is_integer(v):
        _fail(root, path, f"{_SCALARS.get(t, 'scalar')} (an integer or a decimal string)", v)
