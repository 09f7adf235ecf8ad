"""Reaching a hub across nodes (docs/kubernetes.md, "The hub across nodes").

When ``LOGOMESH_HUB_URL`` is set (``ws://host:port/v1`` or ``wss://``), the plugin connects
there over TCP instead of its Unix socket, and proves who it is at every connection attempt:
an HMAC-SHA256 with its own key (the file ``LOGOMESH_HUB_CREDENTIAL`` names, read afresh
each time, as the kubelet updates a rotated Secret in place) over a fresh timestamp and
nonce, in the upgrade request's ``Authorization`` header. The key never travels, and the
header is never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import ssl
import time
from typing import Dict, Optional
from urllib.parse import urlsplit

from .errors import LogoMeshError

SCHEME = "LogoMesh-HMAC-SHA256"


def hub_authorization(key: bytes, plugin_id: str, ts: int, nonce: str) -> str:
    """The ``Authorization`` header value: ``nonce`` is 32 lower-case hex digits, ``ts`` ms since the epoch."""
    text = f"logomesh-hub-v1\n{plugin_id}\n{ts}\n{nonce}".encode()
    sig = hmac.new(key, text, hashlib.sha256).hexdigest()
    return f'{SCHEME} plugin="{plugin_id}", ts="{ts}", nonce="{nonce}", sig="{sig}"'


def is_url(endpoint: str) -> bool:
    return endpoint.startswith(("ws://", "wss://"))


class HubUrl:
    """Where a hub across nodes listens, from ``LOGOMESH_HUB_URL``."""

    __slots__ = ("url", "host", "port", "resource", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise LogoMeshError("LM_CONTROLLER_UNAVAILABLE", f"LOGOMESH_HUB_URL {url!r} is not a ws:// or wss:// URL with a host",
                                {"expected": "ws://host:port/v1 or wss://host:port/v1", "found": url})
        self.url = url
        self.tls = parts.scheme == "wss"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.resource = parts.path or "/v1"

    def host_header(self) -> str:
        return f"{self.host}:{self.port}"

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        """For wss://: the hub's certificate checked against LOGOMESH_HUB_CA (else the system's CAs)."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=os.environ.get("LOGOMESH_HUB_CA") or None)


def auth_headers(plugin_id: str) -> Dict[str, str]:
    """A fresh header for one connection attempt, with the key read from its file now."""
    path = os.environ.get("LOGOMESH_HUB_CREDENTIAL")
    if not path:
        raise LogoMeshError("LM_UNAUTHORIZED", "LOGOMESH_HUB_URL is set but LOGOMESH_HUB_CREDENTIAL is not: the plugin has no key to prove who it is",
                            {"expected": "LOGOMESH_HUB_CREDENTIAL naming the key file", "found": "unset"})
    try:
        with open(path, "rb") as f:
            key = f.read()
    except OSError as e:
        raise LogoMeshError("LM_UNAUTHORIZED", f"the hub key {path} cannot be read: {e.strerror or e}", {"file": path}) from None
    if not key:
        raise LogoMeshError("LM_UNAUTHORIZED", f"the hub key {path} is empty", {"file": path})
    return {"Authorization": hub_authorization(key, plugin_id, int(time.time() * 1000), secrets.token_hex(16))}
