"""The WebSocket upgrade (RFC 6455 4): the client's request, the check of the server's answer,
and a refusal's status and the code of the hub's JSON body (LM_UNAUTHORIZED, LM_RATE_LIMITED)."""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Dict, Optional

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The longest upgrade answer read before giving up: a server cannot make this process hold more.
MAX_HANDSHAKE = 16 * 1024


class HandshakeError(Exception):
    """The server did not accept the WebSocket upgrade: its HTTP ``status`` and, when its
    body is the hub's JSON refusal, its ``code`` (LM_UNAUTHORIZED, LM_RATE_LIMITED)."""

    def __init__(self, why: str, status: Optional[int] = None, code: Optional[str] = None) -> None:
        super().__init__(why)
        self.status = status
        self.code = code


def upgrade_request(path: str, host: str, key: bytes, headers: Dict[str, str]) -> bytes:
    """The HTTP request that asks for the upgrade, with the extra ``headers`` (the hub's
    authorization across nodes)."""
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\n"
        b"Host: " + host.encode() + b"\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        + b"\r\n"
    )


def check_handshake(head: str, key: bytes) -> Optional[str]:
    """What is wrong with the server's answer ``head`` to the upgrade asked with ``key``; None when nothing."""
    lines = head.split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        return f"the server answered the upgrade with {lines[0]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != expected:
        return "the server's Sec-WebSocket-Accept does not match the key"
    if headers.get("upgrade", "").lower() != "websocket":
        return "the server's response lacks 'Upgrade: websocket'"
    return None


def refusal(head: str, body: bytes):
    """The status of a refused upgrade, and the code of the hub's JSON body when it has come."""
    status_line = head.split("\r\n", 1)[0].split(" ", 2)
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
    try:
        code = json.loads(body.decode("utf-8")).get("code")
    except (ValueError, AttributeError):
        code = None
    return status, code if isinstance(code, str) else None
