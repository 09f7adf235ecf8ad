"""What several test modules share."""
import asyncio

from logomesh import Plugin


def make_plugin(**kw):
    p = Plugin("subject", **kw)

    @p.method
    def add(a, b):
        return a + b

    @p.method("mul")
    async def multiply(a, b):
        await asyncio.sleep(0)
        return a * b

    @p.method
    def nothing():
        return None

    @p.method
    def first(value):
        return value[0]

    return p

