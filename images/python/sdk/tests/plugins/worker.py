"""A plugin run as its own process by test_process.py."""
import asyncio
import sys
import time

from logomesh import Plugin

plugin = Plugin(grace=float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)


@plugin.method
async def slow(seconds=0.3):
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@plugin.method
def stuck():
    time.sleep(60)


@plugin.method
def hello(name):
    print(f"serving hello for {name}")
    return f"hello {name}"


pokes = []


@plugin.on("worker.poke")
async def poked(data):
    pokes.append(data)


@plugin.method("pokes")
def list_pokes():
    return pokes


print(f"starting {plugin.id}")
plugin.run()
print("run() returned")
