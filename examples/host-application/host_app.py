#!/usr/bin/env python3
"""A host application that serves methods to LogoMesh plugins, in Python, with the standard
library only (no LogoMesh SDK, no third-party package). See docs/protocol.md#register.

It connects to the hub's TCP endpoint of a running `logomesh up --host-methods
get_user,log_event` with the bearer token, registers the host methods it serves, and
answers the plugins' calls to them. Plugins call them as `host` methods: their manifests
list `get_user` under coordination.consumesMethods, and the hub checks that, as for calls
between plugins.

    python3 host_app.py                  # the controller of LOGOMESH_HOME (or the default home)
    python3 host_app.py --home DIR       # another controller's home
    python3 host_app.py --url ws://127.0.0.1:7070/v1 --token-file /path/hub.token

The WebSocket client below is the least RFC 6455 needs: a handshake, masked text frames
out, text, ping and close frames in, and pongs that echo the hub's pings (the hub closes a
connection that does not answer them).
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time
from urllib.parse import urlparse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    """A blocking WebSocket client over one TCP connection."""

    def __init__(self, url, headers):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {u.path or '/'} HTTP/1.1", f"Host: {u.hostname}:{u.port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the hub closed the connection during the handshake")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0].decode()
        if " 101 " not in status:
            raise ConnectionError(f"the hub refused the connection: {status}: {self.buffer.decode(errors='replace').strip()}")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if f"sec-websocket-accept: {accept}".lower() not in head.decode().lower():
            raise ConnectionError("the hub's handshake answer does not match the key")
        self.sock.settimeout(None)

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the hub closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, message):
        self._send_frame(0x1, json.dumps(message).encode())

    def receive(self):
        """The next message as a dict; answers pings on the way. None once the hub closed."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                return None
            elif opcode in (0x1, 0x0):
                parts.append(payload)
                if b0 & 0x80:
                    return json.loads(b"".join(parts))


# The methods this application serves. Each takes the call's data and the calling plugin's id.
USERS = {1: "Ada", 2: "Grace"}
EVENTS = []


def get_user(data, caller):
    user_id = (data or {}).get("id")
    if user_id not in USERS:
        raise LookupError(f"no user {user_id}")
    return {"id": user_id, "name": USERS[user_id], "askedBy": caller}


def log_event(data, caller):
    EVENTS.append({"from": caller, "event": data})
    return {"logged": len(EVENTS)}


METHODS = {"get_user": get_user, "log_event": log_event}


def hub_address(args):
    if args.url:
        token = open(args.token_file).read().strip() if args.token_file else os.environ["LOGOMESH_HUB_TOKEN"]
        return args.url, token
    home = args.home or os.environ.get("LOGOMESH_HOME") or (
        "/run/logomesh" if os.getuid() == 0 else os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/tmp"), f"logomesh-{os.getuid()}"))
    port = open(os.path.join(home, "hub.port")).read().strip()
    token = open(os.path.join(home, "hub.token")).read().strip()
    return f"ws://127.0.0.1:{port}/v1", token


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="the controller's home folder (hub.port, hub.token)")
    parser.add_argument("--url", help="the hub's URL, ws://host:port/v1")
    parser.add_argument("--token-file", help="the file holding the hub token (with --url)")
    parser.add_argument("--methods", default=",".join(METHODS), help="the methods to serve (default: all)")
    args = parser.parse_args()
    url, token = hub_address(args)
    ws = WebSocket(url, {"Authorization": f"Bearer {token}"})
    served = [m for m in args.methods.split(",") if m]
    ws.send({"type": "register", "id": "register-1", "methods": served})
    answer = ws.receive()
    if not answer or not answer.get("success"):
        print(f"registration refused: {json.dumps((answer or {}).get('error'))}", file=sys.stderr)
        return 1
    print(f"serving {', '.join(served)} to plugins at {url}", flush=True)
    while True:
        msg = ws.receive()
        if msg is None:
            print("the hub closed the connection", file=sys.stderr)
            return 0
        if msg.get("type") != "request":
            continue
        reply = {"type": "response", "id": f"r-{time.monotonic_ns()}", "correlationId": msg["id"]}
        try:
            reply.update(success=True, data=METHODS[msg["method"]](msg.get("data"), msg.get("from")))
        except Exception as err:  # the caller gets a coded error, the application goes on
            reply.update(success=False, error={"code": "LM_PLUGIN_ERROR", "message": f"{type(err).__name__}: {err}"})
        ws.send(reply)


if __name__ == "__main__":
    sys.exit(main())
