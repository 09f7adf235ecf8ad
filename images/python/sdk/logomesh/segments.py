"""Shared-memory segments (docs/shared-memory.md): a segment is a file in the pool the
controller mounts at ``LOGOMESH_SEGMENTS_DIR``, mapped with ``mmap`` so that reading and
writing it copy nothing. What a plugin may open is the kernel's decision (the file's ACL);
the hub checks handles in messages and grants access on the way when the owner asks."""
from __future__ import annotations

import asyncio
import mmap
import os
from typing import Any, Dict, List, Optional, Tuple

from . import bridge
from .errors import LogoMeshError

KEY = "$segment"
MOUNT = "/run/logomesh-segments"


def segments_dir() -> Optional[str]:
    return os.environ.get("LOGOMESH_SEGMENTS_DIR")


class Segment:
    """A handle to one segment: ``view()`` (a zero-copy ``memoryview``), ``read``, ``write``,
    ``slice`` and ``close``; the owner also ``resize``, ``set_read_only``, ``share``,
    ``publish`` and ``free`` (coroutines; ``*_sync`` forms for ``def`` handlers). Put a
    segment (or ``seg.grant("read")``) anywhere in a call's data, a result or an event's
    data: the SDK sends its handle, and the receiver gets a ``Segment``."""

    def __init__(self, plugin: Any, handle: Dict[str, Any]) -> None:
        self._plugin = plugin
        self._set(handle)
        self._map: Optional[mmap.mmap] = None
        self._writable = False

    def _set(self, h: Dict[str, Any]) -> None:
        self.id: str = h["id"]
        self.owner: str = h["owner"]
        self.size: int = h["size"]
        self.read_only: bool = bool(h.get("readOnly"))
        self.path: str = h["path"]

    def handle(self) -> Dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "size": self.size, "readOnly": self.read_only, "path": self.path}

    def __repr__(self) -> str:
        return f"Segment({self.id}, owner={self.owner}, size={self.size}{', read-only' if self.read_only else ''})"

    # -- mapping ---------------------------------------------------------------------------
    def _file(self) -> str:
        base = segments_dir()
        if not base:
            raise LogoMeshError("LM_SEGMENT", "this plugin has no shared-memory pool (set coordination.sharedMemory: true)")
        return os.path.join(base, self.path)

    def _mapped(self, write: bool) -> mmap.mmap:
        if self._map is not None and (self._writable or not write):
            return self._map
        self.close()
        try:
            fd = os.open(self._file(), os.O_RDWR if write else os.O_RDONLY)
        except PermissionError:
            raise LogoMeshError("LM_PERMISSION_DENIED", f"the kernel refused to open segment {self.id} for "
                                f"{'writing' if write else 'reading'}: this plugin was not given that access") from None
        except FileNotFoundError:
            raise LogoMeshError("LM_SEGMENT", f"segment {self.id} does not exist (freed?)") from None
        try:
            # MAP_POPULATE: the pages are mapped in one go, not one fault at a time.
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            self._map = mmap.mmap(fd, self.size, flags, mmap.PROT_READ | (mmap.PROT_WRITE if write else 0))
        finally:
            os.close(fd)
        self._writable = write
        return self._map

    def view(self, write: bool = False) -> memoryview:
        """The whole segment as a ``memoryview`` on the shared pages (no copy); writable
        when ``write`` (the kernel refuses unless this plugin may write it)."""
        m = self._mapped(write)
        return memoryview(m) if write else memoryview(m).toreadonly()

    def slice(self, start: int, end: Optional[int] = None, write: bool = False) -> memoryview:
        return self.view(write)[start:end]

    def read(self, offset: int = 0, length: Optional[int] = None) -> bytes:
        """A copy of ``length`` bytes from ``offset`` (default: to the end)."""
        end = self.size if length is None else offset + length
        return bytes(self.view()[offset:end])

    def write(self, data: Any, offset: int = 0) -> int:
        view = memoryview(data).cast("B")
        if offset < 0 or offset + len(view) > self.size:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"writing {len(view)} bytes at {offset} passes the segment's {self.size} bytes")
        self._mapped(True)[offset:offset + len(view)] = view
        return len(view)

    def close(self) -> None:
        """Unmap it (the segment itself lives on until its owner frees it)."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # a memoryview of it is still alive; the mapping goes with it
            self._map = None

    # -- structured data (the data bridge) ---------------------------------------------------
    def write_structured(self, value: Any, fmt: str = "json", message_type: Optional[str] = None, types: Any = None) -> int:
        """Write ``value`` as ``json``, ``msgpack`` or ``protobuf`` (google.protobuf.Value, or the
        declared ``message_type`` of ``types``, a ProtobufTypes), with the bridge's header;
        returns the bytes written. The segment must be large enough."""
        data = bridge.frame(value, fmt, message_type, types)
        if len(data) > self.size:
            raise LogoMeshError("LM_INVALID_ARGUMENT", f"the data takes {len(data)} bytes in {fmt}; the segment has {self.size}")
        return self.write(data)

    def read_structured(self, fmt: Optional[str] = None, message_type: Optional[str] = None, types: Any = None) -> Any:
        return bridge.unframe(self.view(), fmt, message_type, types)[0]

    # -- asking the pool ---------------------------------------------------------------------------
    def grant(self, access: str = "read") -> "Granted":
        """This segment, sent with access for its receiver (the owner only)."""
        return Granted(self, access)

    async def resize(self, size: int) -> None:
        self.close()
        self._set(await self._plugin._segment_op("resize", segment=self.id, size=size))

    async def set_read_only(self) -> None:
        self.close()
        self._set(await self._plugin._segment_op("readonly", segment=self.id))

    async def share(self, plugins: List[str], access: str = "read") -> None:
        await self._plugin._segment_op("share", segment=self.id, plugins=list(plugins), access=access)

    async def publish(self, key: str, ttl_ms: int) -> None:
        self.close()
        self._set(await self._plugin._segment_op("publish", segment=self.id, key=key, ttlMs=int(ttl_ms)))

    async def release(self) -> None:
        self.close()
        await self._plugin._segment_op("release", segment=self.id)

    async def free(self) -> None:
        self.close()
        await self._plugin._segment_op("free", segment=self.id)

    def resize_sync(self, size: int) -> None:
        self._plugin._from_thread(self.resize, size)

    def set_read_only_sync(self) -> None:
        self._plugin._from_thread(self.set_read_only)

    def share_sync(self, plugins: List[str], access: str = "read") -> None:
        self._plugin._from_thread(lambda: self.share(plugins, access))

    def free_sync(self) -> None:
        self._plugin._from_thread(self.free)


class Granted:
    __slots__ = ("segment", "access")

    def __init__(self, segment: Segment, access: str) -> None:
        if access not in ("read", "write"):
            raise ValueError("access must be 'read' or 'write'")
        self.segment = segment
        self.access = access


def pack(value: Any) -> Tuple[Any, List[Dict[str, Any]]]:
    """``value`` with every Segment replaced by its handle (``{"$segment": {...}}``), and the
    segment refs the message must carry."""
    refs: Dict[str, Dict[str, Any]] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, Segment) or isinstance(v, Granted):
            seg = v if isinstance(v, Segment) else v.segment
            ref = refs.setdefault(seg.id, {"id": seg.id})
            if isinstance(v, Granted) and (ref.get("grant") != "write"):
                ref["grant"] = v.access
            return {KEY: seg.handle()}
        if type(v) is dict:
            return {k: walk(x) for k, x in v.items()}
        if type(v) in (list, tuple):
            return [walk(x) for x in v]
        return v

    out = walk(value)
    return out, list(refs.values())


def unpack(plugin: Any, value: Any) -> Any:
    """``value`` with every segment handle turned into a :class:`Segment`."""
    if type(value) is dict:
        h = value.get(KEY)
        if len(value) == 1 and type(h) is dict and isinstance(h.get("id"), str) and isinstance(h.get("path"), str):
            return Segment(plugin, h)
        return {k: unpack(plugin, x) for k, x in value.items()}
    if type(value) is list:
        return [unpack(plugin, x) for x in value]
    return value


class SegmentsMixin:
    """The part of :class:`logomesh.Plugin` that asks the pool: ``allocate``, ``lookup``,
    ``segments``."""

    _loop: Optional[asyncio.AbstractEventLoop]
    _pending: Dict[str, asyncio.Future]

    async def _segment_op(self, op: str, **fields: Any) -> Any:
        ws = self._connected_ws()  # type: ignore[attr-defined]
        rid = self._new_id()  # type: ignore[attr-defined]
        loop = self._loop
        assert loop is not None
        fut = loop.create_future()
        self._pending[rid] = fut
        ws.send_text(self._frame({"type": "segment", "id": rid, "op": op, **fields}, f"segment {op}"))  # type: ignore[attr-defined]
        try:
            return await asyncio.wait_for(fut, 30)
        finally:
            self._pending.pop(rid, None)

    async def allocate(self, size: int) -> Segment:
        """A new segment of ``size`` bytes (zeroed), owned by this plugin, which alone may open it until it shares it."""
        return Segment(self, await self._segment_op("allocate", size=int(size)))

    async def lookup(self, key: str) -> Segment:
        """The segment published under ``key`` (read-only), with read access given to this plugin."""
        return Segment(self, await self._segment_op("lookup", key=key))

    async def segments(self) -> List[Dict[str, Any]]:
        """The segments this plugin owns or holds."""
        return (await self._segment_op("list"))["segments"]

    def segment(self, handle: Dict[str, Any]) -> Segment:
        """A Segment for a handle received some other way."""
        return Segment(self, handle.get(KEY, handle))

    def allocate_sync(self, size: int) -> Segment:
        return self._from_thread(self.allocate, size)  # type: ignore[attr-defined]

    def lookup_sync(self, key: str) -> Segment:
        return self._from_thread(self.lookup, key)  # type: ignore[attr-defined]
