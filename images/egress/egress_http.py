"""Reading and checking a plugin's request head: what the proxy forwards, or why it refuses.

Strict on purpose: anything two parsers could read differently (bare LF line ends, folded or
malformed header lines, control bytes, several Host headers, a Host header naming another
host than the URI, Content-Length beside Transfer-Encoding, codings other than chunked) is
refused, so the upstream sees the same request the proxy checked.
"""
import re
import socket
import time

from egress_config import normalize_name

MAX_HEAD = 64 * 1024
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
BARE_LF = re.compile(rb"(?<!\r)\n")
# Bytes a head line may hold: tab, visible ASCII, space, and obs-text (0x80-0xff) in values.
BAD_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
VERSION = re.compile(r"^HTTP/1\.[01]$")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "upgrade", "host", "transfer-encoding", "content-length"}


class Refused(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def read_head(sock, deadline):
    """The head (without its final CRLF CRLF) and whatever body bytes came with it. The whole
    head must arrive before `deadline` (time.monotonic()), however slowly it trickles."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            if BARE_LF.search(buf, 0, end):
                raise Refused(400, "bare-lf")
            return buf[:end], buf[end + 4 :]
        if BARE_LF.search(buf):
            raise Refused(400, "bare-lf")
        if len(buf) > MAX_HEAD:
            raise Refused(431, "header-too-large")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Refused(408, "head-timeout")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(8192)
        except socket.timeout:
            raise Refused(408, "head-timeout")
        if not chunk:
            raise Refused(400, "incomplete-request")
        buf += chunk


def parse_head(head):
    """(method, target, version, [(name, value)]) of a well-formed head; Refused otherwise."""
    lines = head.split(b"\r\n")
    for line in lines:
        if BAD_BYTE.search(line):
            raise Refused(400, "bad-request")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not TOKEN.match(parts[0]) or not VERSION.match(parts[2]) or not parts[1]:
        raise Refused(400, "bad-request")
    headers = []
    for raw in lines[1:]:
        line = raw.decode("latin-1")
        name, colon, value = line.partition(":")
        # No folded lines (leading whitespace), no space before the colon.
        if not colon or not TOKEN.match(name):
            raise Refused(400, "bad-header")
        headers.append((name, value.strip(" \t")))
    return parts[0], parts[1], parts[2], headers


def split_host_port(authority, default_port):
    """(normalised name, port) of `host[:port]`; ValueError if it is not one."""
    host, sep, port = authority.rpartition(":")
    if not sep:
        host, port = authority, ""
    if port == "" and default_port is not None:
        port = str(default_port)
    if not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536:
        raise ValueError("bad port")
    return normalize_name(host), int(port)


def absolute_target(target):
    """(host, port, origin-form path) of an `http://` absolute URI; Refused otherwise."""
    if not target.lower().startswith("http://"):
        raise Refused(400, "not-a-proxy-request")
    if "#" in target:
        raise Refused(400, "bad-request")  # a fragment is never sent to a server
    rest = target[7:]
    cut = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if "@" in authority:
        raise Refused(400, "userinfo")
    try:
        host, port = split_host_port(authority, 80)
    except ValueError:
        raise Refused(400, "bad-host")
    if not path.startswith("/"):
        path = "/" + path
    return host, port, path


def forwarded_head(method, path, version, headers, host, port):
    """The head sent upstream, or Refused. The Host header is the URI's host (a plugin's own
    Host header must name the same host and port); a chunked body keeps its Transfer-Encoding,
    so the upstream reads the body as the proxy does; Connection: close."""
    named = lambda n: [v for k, v in headers if k.lower() == n]
    hosts = named("host")
    if len(hosts) > 1:
        raise Refused(400, "bad-request")
    if hosts:
        try:
            if split_host_port(hosts[0], 80) != (host, port):
                raise Refused(403, "host-mismatch")
        except ValueError:
            raise Refused(403, "host-mismatch")
    framing = []
    codings = [c.strip().lower() for v in named("transfer-encoding") for c in v.split(",") if c.strip()]
    lengths = named("content-length")
    if named("transfer-encoding"):
        if codings != ["chunked"]:
            raise Refused(501, "unsupported-transfer-encoding")
        if lengths:
            raise Refused(400, "bad-request")
        framing.append("Transfer-Encoding: chunked")
    elif lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            raise Refused(400, "bad-content-length")
        framing.append("Content-Length: " + str(int(lengths[0])))
    drop = set(HOP_BY_HOP)
    for v in named("connection"):
        drop.update(t.strip().lower() for t in v.split(",") if t.strip())
    kept = [f"{k}: {v}" for k, v in headers if k.lower() not in drop]
    authority = host if port == 80 else f"{host}:{port}"
    lines = [f"{method} {path} {version}", f"Host: {authority}", *kept, *framing, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")
