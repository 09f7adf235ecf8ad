"""A hub across nodes: the handshake's test vector, and a plugin connecting over TCP with its
key, read afresh at every attempt, retrying after the hub's 401 (docs/kubernetes.md)."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import struct
import tempfile
import time
import unittest
from unittest import mock

from logomesh import Plugin
from logomesh.errors import LogoMeshError
from logomesh.hub_auth import hub_authorization

VECTOR = ('LogoMesh-HMAC-SHA256 plugin="analyzer", ts="1780000000000", nonce="0123456789abcdef0123456789abcdef", '
          'sig="68534c9927a1ceef4d282c2b274fd8d638d75733d050ede5a61c87939409c584"')
HEADER = re.compile(r'^LogoMesh-HMAC-SHA256 plugin="([a-z0-9-]+)", ts="([0-9]+)", nonce="([0-9a-f]{32})", sig="([0-9a-f]{64})"$')


def check(header, keys):
    """The hub's check, written here again with hmac alone: the plugin id when the signature is right."""
    m = HEADER.match(header or "")
    if not m:
        return None
    plugin, ts, nonce, sig = m.groups()
    text = f"logomesh-hub-v1\n{plugin}\n{ts}\n{nonce}".encode()
    want = hmac.new(keys[plugin], text, hashlib.sha256).hexdigest()
    return plugin if hmac.compare_digest(want, sig) and abs(time.time() * 1000 - int(ts)) < 60_000 else None


class TinyHub:
    """A hub's plugin port, from the socket up: refuses the first upgrade with the hub's 401,
    checks every Authorization header, and answers hello once it accepted one."""

    def __init__(self, keys):
        self.keys = keys
        self.headers = []
        self.refuse_first = True
        self.hello = asyncio.get_running_loop().create_future()

    async def handle(self, reader, writer):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        self.headers.append(fields)
        plugin = check(fields.get("Authorization"), self.keys)
        if self.refuse_first or plugin is None:
            self.refuse_first = False
            body = json.dumps({"code": "LM_UNAUTHORIZED", "message": "plugin handshake refused: unknown plugin"}).encode()
            writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            writer.close()
            return
        accept = base64.b64encode(hashlib.sha1(fields["Sec-WebSocket-Key"].encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", await reader.readexactly(2))[0]
        mask = await reader.readexactly(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(n)))
        hello = json.loads(data)
        answer = json.dumps({"type": "response", "id": "h1", "correlationId": hello["id"], "success": True,
                             "data": {"plugin": plugin, "protocol": 1, "maxMessageBytes": 1048576}}).encode()
        writer.write(bytes([0x81, 126]) + struct.pack(">H", len(answer)) + answer if len(answer) > 125 else bytes([0x81, len(answer)]) + answer)
        self.hello.set_result(hello)
        await reader.read()  # until the plugin goes


class HubAuthTest(unittest.IsolatedAsyncioTestCase):
    def test_the_vector_every_sdk_reproduces(self):
        self.assertEqual(hub_authorization(bytes([7]) * 32, "analyzer", 1780000000000, "0123456789abcdef0123456789abcdef"), VECTOR)

    async def test_connects_over_tcp_reading_its_key_at_every_attempt_and_retrying_after_401(self):
        with tempfile.TemporaryDirectory() as d:
            key_file = os.path.join(d, "key")
            first, rotated = os.urandom(32), os.urandom(32)
            with open(key_file, "wb") as f:
                f.write(first)
            hub = TinyHub({"subject": rotated})
            server = await asyncio.start_server(hub.handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            env = {"LOGOMESH_HUB_URL": f"ws://127.0.0.1:{port}/v1", "LOGOMESH_HUB_CREDENTIAL": key_file,
                   # Never the way to the hub, whatever they say.
                   "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
            plugin = Plugin("subject")
            with mock.patch.dict(os.environ, env), self.assertLogs("logomesh", "WARNING") as logs:
                task = asyncio.get_running_loop().create_task(plugin.serve())
                await asyncio.sleep(0.1)
                # The Secret is rotated while the plugin waits to try again: it reads the new key.
                with open(key_file, "wb") as f:
                    f.write(rotated)
                hello = await asyncio.wait_for(hub.hello, 10)
                plugin.stop()
                await asyncio.wait_for(task, 10)
            server.close()
            self.assertEqual(hello["type"], "hello")
            self.assertEqual(len(hub.headers), 2)
            self.assertIsNone(check(hub.headers[0]["Authorization"], hub.keys))  # the old key
            self.assertEqual(check(hub.headers[1]["Authorization"], hub.keys), "subject")
            nonces = [HEADER.match(h["Authorization"]).group(3) for h in hub.headers]
            self.assertNotEqual(nonces[0], nonces[1])
            self.assertEqual(hub.headers[1]["Host"], f"127.0.0.1:{port}")
            text = "\n".join(logs.output)
            self.assertIn("LM_UNAUTHORIZED (401)", text)
            self.assertNotIn("sig=", text)
            self.assertNotIn(rotated.hex(), text)

    async def test_a_url_without_a_key_file_is_refused_at_once(self):
        with mock.patch.dict(os.environ, {"LOGOMESH_HUB_URL": "ws://127.0.0.1:9/v1"}):
            os.environ.pop("LOGOMESH_HUB_CREDENTIAL", None)
            with self.assertRaises(LogoMeshError) as e:
                await Plugin("subject").serve()
            self.assertEqual(e.exception.code, "LM_UNAUTHORIZED")


if __name__ == "__main__":
    unittest.main()
