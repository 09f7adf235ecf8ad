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
from .plugin import DEFAULT_SOCKET, PROTOCOL_VERSION, SDK, VERSION, Event, Plugin, topic_matches

__version__ = VERSION
__all__ = ["Plugin", "LogoMeshError", "Event", "topic_matches", "SDK", "PROTOCOL_VERSION", "DEFAULT_SOCKET", "__version__"]
