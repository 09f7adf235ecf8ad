"""LogoMesh plugin SDK for Python.

    from logomesh import Plugin, LogoMeshError

    plugin = Plugin()

    @plugin.method
    async def greet(name: str) -> dict:
        return {"greeting": f"hello {name}"}

    plugin.run()

See docs/sdk/python.md in the LogoMesh repository.
"""
from .errors import LogoMeshError
from .options import DEFAULT_SOCKET
from .plugin import Event, Plugin
from .segments import Segment
from .protobuf_types import ProtobufTypes
from .protocol import MAX_DEPTH, PROTOCOL_VERSION, SDK, VERSION, topic_matches

__version__ = VERSION
__all__ = ["Plugin", "LogoMeshError", "Event", "Segment", "ProtobufTypes", "topic_matches", "SDK", "PROTOCOL_VERSION", "DEFAULT_SOCKET", "MAX_DEPTH", "__version__"]
