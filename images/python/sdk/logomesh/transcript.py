"""The protocol's recorded conformance session (images/protocol/ of LogoMesh, in the runtime
image at /opt/logomesh/protocol): loading it, and replaying it as the hub on one WebSocket
connection of Debian's ``websockets`` package. ``FakeHub(transcript=...)`` uses it; see
images/protocol/README.md for the format."""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["PROTOCOL_DIR", "load", "replay", "Mismatch"]

#: Where protocol.json and transcript.json are (LOGOMESH_PROTOCOL_DIR overrides it).
PROTOCOL_DIR = os.environ.get("LOGOMESH_PROTOCOL_DIR", "/opt/logomesh/protocol")


class Mismatch(AssertionError):
    """The plugin did not do what the transcript expects at some step."""


def load(name: str = "transcript.json") -> Dict[str, Any]:
    """A file of the protocol folder, parsed: ``transcript.json`` or ``protocol.json``."""
    with open(os.path.join(PROTOCOL_DIR, name), encoding="utf-8") as f:
        return json.load(f)


def _generated(value: Any) -> Optional[str]:
    """The JSON text a generator object (``{"$nested": n}``, ``{"$string": n}``) stands for."""
    if isinstance(value, dict) and len(value) == 1:
        (key, n), = value.items()
        if key == "$nested" and isinstance(n, int):
            return "[" * n + "]" * n
        if key == "$string" and isinstance(n, int):
            return '"' + "x" * n + '"'
    return None


def render(frame: Any, bound: Dict[str, Any]) -> str:
    """A frame to send as text: ``$name`` replaced by what it was bound to, generators by
    their text (written into the text directly: no deep recursion here)."""
    texts: List[str] = []

    def walk(v: Any) -> Any:
        text = _generated(v)
        if text is not None:
            texts.append(text)
            return f"@@lm-generated-{len(texts) - 1}@@"
        if isinstance(v, str) and v.startswith("$"):
            if v[1:] not in bound:
                raise Mismatch(f"{v} is used before the plugin sent it")
            return bound[v[1:]]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    out = json.dumps(walk(frame), separators=(",", ":"), ensure_ascii=False)
    for i, text in enumerate(texts):
        out = out.replace(f'"@@lm-generated-{i}@@"', text, 1)
    return out


def _nested(actual: Any, n: int) -> bool:
    """Is ``actual`` n nested arrays with an empty one innermost?"""
    for level in range(1, n + 1):
        if not isinstance(actual, list):
            return False
        if level == n:
            return actual == []
        if len(actual) != 1:
            return False
        actual = actual[0]
    return False


def match(expected: Any, actual: Any, bound: Dict[str, Any], path: str = "") -> Optional[str]:
    """Why ``actual`` does not match ``expected`` (None when it does); binds ``$name``s."""
    where = path or "the frame"
    if isinstance(expected, str) and expected.startswith("$"):
        name = expected[1:]
        if name not in bound:
            bound[name] = actual
            return None
        return None if bound[name] == actual else f"{where}: expected {json.dumps(bound[name])} (as {expected}), found {json.dumps(actual)[:200]}"
    text = _generated(expected)
    if text is not None:
        key, n = next(iter(expected.items()))
        ok = _nested(actual, n) if key == "$nested" else actual == "x" * n
        return None if ok else f"{where}: expected {key} {n}, found {json.dumps(actual)[:200]}"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, found {json.dumps(actual)[:200]}"
        for k, v in expected.items():
            if k not in actual:
                return f"{where}: '{k}' is missing"
            problem = match(v, actual[k], bound, f"{path}.{k}" if path else k)
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected {json.dumps(expected)}, found {json.dumps(actual)[:200]}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            problem = match(e, a, bound, f"{path}[{i}]")
            if problem:
                return problem
        return None
    same_kind = isinstance(expected, bool) == isinstance(actual, bool)
    if same_kind and expected == actual and (expected is None) == (actual is None):
        return None
    return f"{where}: expected {json.dumps(expected)}, found {json.dumps(actual)[:200]}"


def _describe(i: int, step: Dict[str, Any]) -> str:
    return f"step {i + 1}" + (f" ({step['note']})" if "note" in step else "")


async def replay(ws: Any, transcript: Dict[str, Any], *, timeout: float = 10.0) -> Dict[str, Any]:
    """Play the hub's side of ``transcript`` on ``ws`` (a connection of the ``websockets``
    server). Returns what the ``$name``s were bound to; raises :class:`Mismatch` at the
    first step the plugin does not follow."""
    bound: Dict[str, Any] = {}
    last = "(none)"
    for i, step in enumerate(transcript["steps"]):
        try:
            if "send" in step:
                await ws.send(render(step["send"], bound))
            elif "expect" in step:
                raw = await asyncio.wait_for(ws.recv(), timeout)
                last = raw if isinstance(raw, str) else f"<{len(raw)} binary bytes>"
                if not isinstance(raw, str):
                    raise Mismatch("a binary frame")
                problem = match(step["expect"], json.loads(raw), bound)
                if problem:
                    raise Mismatch(problem)
            elif "ping" in step:
                pong = await ws.ping(step["ping"].encode())
                await asyncio.wait_for(pong, timeout)
            elif "expectClose" in step:
                code, extra = await _closed(ws, timeout)
                if code != step["expectClose"]:
                    raise Mismatch(f"closed with {code}, expected {step['expectClose']}{extra}")
            else:
                raise Mismatch(f"unknown step {json.dumps(step)}")
        except Mismatch as e:
            raise Mismatch(f"{_describe(i, step)}: {e}; last frame from the plugin: {last[:300]}") from None
        except asyncio.TimeoutError:
            raise Mismatch(f"{_describe(i, step)}: nothing within {timeout:g} s; last frame from the plugin: {last[:300]}") from None
        except Exception as e:  # noqa: BLE001 - the connection closed, most likely
            raise Mismatch(f"{_describe(i, step)}: {type(e).__name__}: {e}; last frame from the plugin: {last[:300]}") from None
    return bound


async def _closed(ws: Any, timeout: float) -> Tuple[Optional[int], str]:
    """Wait for the plugin to close; its close code, and any frame it sent meanwhile."""
    extra = ""
    try:
        while True:
            raw = await asyncio.wait_for(ws.recv(), timeout)
            extra = f" (after sending {str(raw)[:200]})"
    except asyncio.TimeoutError:
        return None, " (not closed in time)"
    except Exception:  # noqa: BLE001 - ConnectionClosed: what we wait for
        await ws.wait_closed()
        return ws.close_code, extra
