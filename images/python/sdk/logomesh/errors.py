"""The coded error of the LogoMesh protocol."""
from __future__ import annotations

from typing import Any, Optional


class LogoMeshError(Exception):
    """An error with a protocol code (``LM_...``), a message and optional JSON details.

    Raise it from a method to answer the caller with that code; ``Plugin.call`` raises it
    when the callee, or the hub, answered with an error.
    """

    def __init__(self, code: str, message: str = "", details: Optional[Any] = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.details = details

    def to_wire(self) -> dict:
        wire: dict = {"code": self.code, "message": self.message}
        if self.details is not None:
            wire["details"] = self.details
        return wire

    @classmethod
    def from_wire(cls, error: Any) -> "LogoMeshError":
        if not isinstance(error, dict):
            return cls("LM_PLUGIN_ERROR", "the peer reported a failure without an error object")
        code = error.get("code")
        message = error.get("message")
        return cls(
            code if isinstance(code, str) and code else "LM_PLUGIN_ERROR",
            message if isinstance(message, str) else "",
            error.get("details"),
        )

    def __repr__(self) -> str:
        return f"LogoMeshError({self.code!r}, {self.message!r}, {self.details!r})"


class ConnectionLost(LogoMeshError):
    """What calls waiting for an answer get when the hub connection is lost while the SDK
    will reconnect: LM_PLUGIN_UNAVAILABLE."""

    def __init__(self, code: Optional[int], reason: str) -> None:
        super().__init__("LM_PLUGIN_UNAVAILABLE", "hub connection lost", {"code": code, "reason": reason})


class BadArguments(Exception):
    """A request's data does not fit the method's parameters (answered LM_INVALID_ARGUMENT)."""
