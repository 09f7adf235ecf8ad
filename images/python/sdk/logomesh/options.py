"""How a plugin is configured: its options, their defaults, and what it reads from the
environment the controller sets."""
from __future__ import annotations

import logging
import os
from typing import Optional

from .protocol import DEFAULT_CALL_TIMEOUT_MS

log = logging.getLogger("logomesh")

DEFAULT_SOCKET = "/run/logomesh/hub.sock"
#: A call's timeout when none is given, in seconds (the hub's default).
DEFAULT_TIMEOUT = DEFAULT_CALL_TIMEOUT_MS / 1000
#: The hub answers a call that timed out with LM_TIMEOUT; the SDK's own timer is only a
#: safety net for a hub that never answers, so it fires a little later.
LOCAL_TIMEOUT_MARGIN = 0.5
HELLO_TIMEOUT = 30.0
SUBSCRIBE_TIMEOUT = 10.0
#: After an established connection is lost: how long to keep trying to reconnect (ms;
#: LOGOMESH_RECONNECT_MS, 0 = never), and the backoff between attempts (seconds).
DEFAULT_RECONNECT_MS = 60_000
RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 2.0


def first_hello_timeout() -> Optional[float]:
    """How long to wait for the answer to the first hello: none at all for a warm standby
    (LOGOMESH_STANDBY=1, set by the controller), whose hello the hub answers only when it
    is switched in, which may be hours later."""
    return None if os.environ.get("LOGOMESH_STANDBY") == "1" else HELLO_TIMEOUT


def reconnect_ms_from_env() -> int:
    """LOGOMESH_RECONNECT_MS, or the default when it is unset or not a number >= 0."""
    raw = os.environ.get("LOGOMESH_RECONNECT_MS", "").strip()
    if not raw:
        return DEFAULT_RECONNECT_MS
    try:
        value = int(raw)
        if value < 0:
            raise ValueError(raw)
    except ValueError:
        log.warning("logomesh: LOGOMESH_RECONNECT_MS=%r is not a number of milliseconds >= 0; using %d", raw, DEFAULT_RECONNECT_MS)
        return DEFAULT_RECONNECT_MS
    return value


class Options:
    """A plugin's options, checked once (see :class:`logomesh.Plugin` for each)."""

    __slots__ = ("plugin_id", "socket_path", "max_workers", "grace", "reconnect_ms")

    def __init__(self, plugin_id: Optional[str], socket_path: Optional[str], max_workers: int, grace: float,
                 reconnect_ms: Optional[int]) -> None:
        if reconnect_ms is not None and (not isinstance(reconnect_ms, int) or reconnect_ms < 0):
            raise ValueError("reconnect_ms must be an int >= 0")
        self.plugin_id = plugin_id or os.environ.get("LOGOMESH_PLUGIN_ID") or "plugin"
        self.socket_path = socket_path
        self.max_workers = max_workers
        self.grace = grace
        self.reconnect_ms = reconnect_ms

    def socket(self, override: Optional[str] = None) -> str:
        """Where the hub listens: the argument, the option, LOGOMESH_HUB_URL (a hub across
        nodes, ws:// or wss://), LOGOMESH_HUB_SOCKET, the default."""
        return (override or self.socket_path or os.environ.get("LOGOMESH_HUB_URL")
                or os.environ.get("LOGOMESH_HUB_SOCKET") or DEFAULT_SOCKET)

    def reconnect_window_ms(self) -> int:
        return self.reconnect_ms if self.reconnect_ms is not None else reconnect_ms_from_env()
