"""LogoMesh egress proxy: HTTP (absolute-URI requests) and CONNECT, per-plugin allow-lists.

Which plugin is asking is decided by where the connection arrived, never by what it says:
each networked plugin has its own internal network shared only with this proxy, so the
proxy's local address on an accepted connection names the plugin's network, and the peer
must be inside that network's subnet. The controller writes the allow-lists to CONFIG
(reloaded when the file changes, checked on every new connection, or on SIGHUP). A reload
cuts every open connection the new allow-lists no longer cover (a revoked host, a plugin
taken out), then reports {"event": "config", "generation"} so the controller knows it is done.

The proxy is also each plugin's only DNS server (port 53, UDP and TCP): it forwards nothing
and answers every query NXDOMAIN, so a lookup can't carry data out, and each is reported.

One JSON line on stdout per decision: {"plugin", "host", "port", "method", "result", "reason"}
(result allowed, denied, failed or cut; DNS queries have method "DNS", the name as host and
"qtype").
"""
import ipaddress
import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading

CONFIG = os.environ.get("LOGOMESH_EGRESS_CONFIG", "/etc/logomesh-egress/config.json")
PORT = int(os.environ.get("LOGOMESH_EGRESS_PORT", "3128"))
DNS_PORT = int(os.environ.get("LOGOMESH_EGRESS_DNS_PORT", "53"))
MAX_HEADER = 64 * 1024
HEADER_TIMEOUT = 10
CONNECT_TIMEOUT = 10
IDLE_TIMEOUT = 600
DNS_TCP_TIMEOUT = 5
DNS_TCP_MAX_QUERIES = 16
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}

lock = threading.Lock()  # guards state, active and conns
state = {"stamp": None, "plugins": {}, "deny": []}
active = {}  # plugin id -> open allowed connections
conns = set()  # open admitted connections (Conn), so a reload can cut them
out_lock = threading.Lock()


def emit(obj):
    # Threads emit concurrently; one line each, never interleaved, or the controller loses it.
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    with out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


class Conn:
    """An admitted connection: what it was allowed for, and its sockets, so a reload can cut it."""

    __slots__ = ("local", "plugin", "host", "port", "method", "client", "upstream", "cut")

    def __init__(self, local, plugin, host, port, method, client):
        self.local, self.plugin, self.host, self.port, self.method = local, plugin, host, port, method
        self.client = client
        self.upstream = None  # set once connected; a cut before that refuses the connection
        self.cut = None  # why it was cut: "revoked" or "detached"


def load(force=False):
    """Re-read CONFIG if it changed (the controller replaces it by rename)."""
    try:
        st = os.stat(CONFIG)
    except OSError:
        return
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    with lock:
        if not force and stamp == state["stamp"]:
            return
    try:
        with open(CONFIG, encoding="utf-8") as f:
            cfg = json.load(f)
        plugins = {}
        deny = []
        for p in cfg.get("plugins", []):
            net = ipaddress.ip_network(p["subnet"], strict=False)
            deny.append(net)
            plugins[p["proxyIp"]] = {
                "plugin": str(p["plugin"]),
                "subnet": net,
                "hosts": [str(h).lower() for h in p.get("hosts", [])],
                "max": int(p.get("maxConnections", 0)),
            }
        for d in cfg.get("deny", []):
            deny.append(ipaddress.ip_network(d, strict=False))
        generation = int(cfg.get("generation", 0))
    except (OSError, ValueError, KeyError, TypeError) as e:
        emit({"event": "config-error", "reason": str(e)})
        return
    # The new lists and the sweep under one lock: a connection admitted after this sees the
    # new lists, one admitted before is swept.
    with lock:
        state.update(stamp=stamp, plugins=plugins, deny=deny)
        doomed = sweep(plugins)
    for conn in doomed:
        cut(conn)
    # After the cuts: the controller takes this line as "applied, and what it took away is closed".
    emit({"event": "config", "generation": generation, "plugins": sorted(p["plugin"] for p in plugins.values())})


def verdict(conn, plugins):
    """Why an open connection may not stay open under these allow-lists, or None."""
    entry = plugins.get(conn.local)
    if entry is None or entry["plugin"] != conn.plugin:
        return "detached"
    if not allowed(entry["hosts"], conn.host, conn.port):
        return "revoked"
    return None


def sweep(plugins):
    """Mark the connections the lists no longer cover; return those with sockets to close. Lock held."""
    doomed = []
    for conn in conns:
        if conn.cut is None:
            conn.cut = verdict(conn, plugins)
            if conn.cut is not None and conn.upstream is not None:
                doomed.append(conn)
    return doomed


def cut(conn):
    """End both sides now. Shutdown wakes the relay threads blocked on them, which then end;
    linger 0 makes the final close a reset that drops whatever is still queued, so nothing
    more from the revoked host reaches the plugin, nor from the plugin the host."""
    emit({"plugin": conn.plugin, "host": conn.host, "port": conn.port, "method": conn.method, "result": "cut", "reason": conn.cut})
    for s in (conn.client, conn.upstream):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def reloader(wake):
    """Reload when SIGHUP writes to `wake`. Not in the signal handler itself: a second signal
    arriving while the handler held `lock` would deadlock the main thread."""
    while True:
        os.read(wake, 4096)  # several signals, one reload
        load(force=True)


def reload_on_sighup():
    r, w = os.pipe()
    os.set_blocking(w, False)

    def on_sighup(*_):
        try:
            os.write(w, b"\0")
        except BlockingIOError:
            pass  # a reload is pending already

    signal.signal(signal.SIGHUP, on_sighup)
    threading.Thread(target=reloader, args=(r,), daemon=True).start()


def allowed(hosts, host, port):
    """Exact `host:port`, or `*.suffix:port` for names strictly below suffix. A port is required."""
    for entry in hosts:
        name, sep, p = entry.rpartition(":")
        if not sep or not p.isdigit() or int(p) != port:
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


def forbidden_address(ip, deny):
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return True
    return any(ip in net for net in deny)


def split_host_port(authority, default_port):
    authority = authority.strip()
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = authority.rpartition(":")
        if not sep:
            host, port = authority, ""
    if port == "" and default_port is not None:
        return host.lower().rstrip("."), default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("bad port")
    return host.lower().rstrip("."), int(port)


class Refused(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests", 502: "Bad Gateway", 504: "Gateway Timeout"}


def admit(conn):
    """Check the connection against the lists as they are now (they may have changed while its
    request was read) and count it; raise Refused otherwise."""
    with lock:
        entry = state["plugins"].get(conn.local)
        if entry is None or entry["plugin"] != conn.plugin:
            raise Refused(403, "unknown-network")
        if not allowed(entry["hosts"], conn.host, conn.port):
            raise Refused(403, "not-in-allow-list")
        if active.get(conn.plugin, 0) >= entry["max"]:
            raise Refused(429, "max-connections")
        active[conn.plugin] = active.get(conn.plugin, 0) + 1
        conns.add(conn)
    return conn


def connected(conn, upstream):
    """Record the upstream socket, unless a reload cut the connection while it was being made."""
    with lock:
        if conn.cut is None:
            conn.upstream = upstream
            return
    raise Refused(403, conn.cut)


def release(conn):
    with lock:
        conns.discard(conn)
        active[conn.plugin] -= 1


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        client = self.request
        client.settimeout(HEADER_TIMEOUT)
        load()
        local = client.getsockname()[0]
        peer = client.getpeername()[0]
        with lock:
            entry = state["plugins"].get(local)
            deny = list(state["deny"])
        decision = {"plugin": entry["plugin"] if entry else None, "host": None, "port": None, "method": None}
        conn = None
        try:
            if entry is None or ipaddress.ip_address(peer) not in entry["subnet"]:
                raise Refused(403, "unknown-network")
            head, rest = self.read_head(client)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                raise Refused(400, "bad-request")
            method, target, version = parts
            decision["method"] = method
            if method == "CONNECT":
                host, port = split_host_port(target, None)
            elif target.lower().startswith("http://"):
                authority, slash, path = target[7:].partition("/")
                host, port = split_host_port(authority.rpartition("@")[2], 80)
                path = slash + path
            else:
                raise Refused(400, "not-a-proxy-request")
            decision.update(host=host, port=port)
            if not host:
                raise Refused(403, "not-in-allow-list")
            conn = admit(Conn(local, entry["plugin"], host, port, method, client))
            upstream = self.connect(host, port, deny)
            with upstream:
                connected(conn, upstream)
                emit({**decision, "result": "allowed", "reason": "allow-list"})
                if method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                else:
                    headers = [h for h in lines[1:] if h and h.split(":", 1)[0].strip().lower() not in HOP_BY_HOP]
                    out = "\r\n".join([f"{method} {path or '/'} {version}", *headers, "Connection: close", "", ""])
                    upstream.sendall(out.encode("latin-1") + rest)
                    rest = b""
                if rest:
                    upstream.sendall(rest)
                self.relay(client, upstream)
        except Refused as r:
            emit({**decision, "result": "failed" if r.status >= 500 else "denied", "reason": r.reason})
            self.refuse(client, r.status, r.reason)
        except ValueError:
            emit({**decision, "result": "denied", "reason": "bad-request"})
            self.refuse(client, 400, "bad-request")
        except OSError as e:
            # A cut connection's sockets fail by design; the cut is already reported.
            if decision["host"] is None or (conn is not None and conn.cut is not None):
                return
            emit({**decision, "result": "failed", "reason": f"upstream: {e.__class__.__name__}"})
        finally:
            if conn is not None:
                release(conn)

    def read_head(self, client):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = client.recv(8192)
            if not chunk:
                raise Refused(400, "bad-request")
            buf += chunk
            if len(buf) > MAX_HEADER:
                raise Refused(400, "header-too-large")
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def connect(self, host, port, deny):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise Refused(502, "name-not-resolved")
        last = None
        for family, socktype, proto, _, addr in infos:
            if forbidden_address(ipaddress.ip_address(addr[0]), deny):
                last = Refused(403, "forbidden-address")
                continue
            s = socket.socket(family, socktype, proto)
            s.settimeout(CONNECT_TIMEOUT)
            try:
                s.connect(addr)
                s.settimeout(IDLE_TIMEOUT)
                return s
            except OSError:
                s.close()
                last = Refused(502, "upstream-unreachable")
        raise last or Refused(502, "name-not-resolved")

    def relay(self, client, upstream):
        client.settimeout(IDLE_TIMEOUT)

        def pipe(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        t.start()
        pipe(client, upstream)
        t.join()

    def refuse(self, client, status, reason):
        body = (reason + "\n").encode()
        head = f"HTTP/1.1 {status} {STATUS_TEXT.get(status, 'Error')}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\nX-LogoMesh-Egress: {reason}\r\n\r\n"
        try:
            client.sendall(head.encode() + body)
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


# DNS: the proxy answers, never forwards. A plugin's container names the proxy as its only
# name server, and the engine's resolver in the container passes it every name it does not
# know itself, from the plugin's own address.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python 3.11 does not export it
NXDOMAIN = 3
FORMERR = 1
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}


def label_text(label):
    """A label in presentation form (RFC 1035 escapes), so any bytes a plugin puts in a name show in the audit."""
    out = []
    for b in label:
        if b in (0x2E, 0x5C, 0x22):  # . \ "
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\%03d" % b)
    return "".join(out)


def parse_question(msg):
    """(name, qtype, end of question) of a query with one question; ValueError otherwise."""
    if len(msg) < 12:
        raise ValueError("short")
    flags, qdcount = struct.unpack("!HH", msg[2:6])
    if flags & 0x8000 or qdcount != 1:
        raise ValueError("not one query")
    i, labels, size = 12, [], 1
    while True:
        if i >= len(msg):
            raise ValueError("truncated name")
        n = msg[i]
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        size += n + 1
        if size > 255 or i + 1 + n > len(msg):
            raise ValueError("bad name")
        labels.append(label_text(msg[i + 1 : i + 1 + n]))
        i += 1 + n
    end = i + 5
    if end > len(msg):
        raise ValueError("truncated question")
    (qtype,) = struct.unpack("!H", msg[i + 1 : i + 3])
    return ".".join(labels) or ".", qtype, end


def dns_response(msg, rcode, question_end):
    """The query's id, opcode and RD, QR set, no records; the question echoed when there is one."""
    (flags,) = struct.unpack("!H", msg[2:4])
    qdcount = 1 if question_end > 12 else 0
    return msg[:2] + struct.pack("!HHHHH", 0x8000 | (flags & 0x7900) | rcode, qdcount, 0, 0, 0) + msg[12:question_end]


def dns_answer(local, peer, msg, transport):
    """Answer one DNS message and report it. None: nothing to answer (too short, or a response,
    which is never answered so that two resolvers can't be made to loop)."""
    if len(msg) < 12 or msg[2] & 0x80:
        return None
    with lock:
        entry = state["plugins"].get(local)
    plugin = entry["plugin"] if entry else None
    known = entry is not None and ipaddress.ip_address(peer) in entry["subnet"]
    decision = {"plugin": plugin, "host": None, "port": None, "method": "DNS", "transport": transport, "result": "denied"}
    try:
        name, qtype, end = parse_question(msg)
    except ValueError:
        emit({**decision, "reason": "bad-request"})
        return dns_response(msg, FORMERR, 12)
    emit({**decision, "host": name, "qtype": QTYPES.get(qtype, str(qtype)), "reason": "no-dns" if known else "unknown-network"})
    return dns_response(msg, NXDOMAIN, end)


def pktinfo_destination(ancdata):
    """The address a datagram was sent to (IP_PKTINFO's ipi_addr): it names the plugin network."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntoa(data[8:12])
    return None


def serve_dns_udp(sock):
    while True:
        try:
            msg, anc, _, peer = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            local = pktinfo_destination(anc)
            reply = dns_answer(local, peer[0], msg, "udp") if local else None
            if reply is not None:
                # Answer from the address asked, whatever the routing table would pick.
                src = struct.pack("@i4s4s", 0, socket.inet_aton(local), bytes(4))
                sock.sendmsg([reply], [(socket.IPPROTO_IP, IP_PKTINFO, src)], 0, peer)
        except (OSError, ValueError):
            continue


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class DnsTcpHandler(socketserver.BaseRequestHandler):
    """DNS over TCP (what the engine's resolver uses for a plugin that asks over TCP):
    a few length-prefixed queries per connection, each answered like over UDP."""

    def handle(self):
        c = self.request
        c.settimeout(DNS_TCP_TIMEOUT)
        try:
            local, peer = c.getsockname()[0], c.getpeername()[0]
            for _ in range(DNS_TCP_MAX_QUERIES):
                head = recv_exact(c, 2)
                msg = head and recv_exact(c, struct.unpack("!H", head)[0])
                reply = msg and dns_answer(local, peer, msg, "tcp")
                if not reply:
                    return
                c.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass


def start_dns():
    """Listen on DNS_PORT, UDP and TCP. Binding a port under 1024 as nobody needs the container's
    net.ipv4.ip_unprivileged_port_start lowered (egress.ts sets it). Without DNS the plugins'
    lookups time out instead: still nothing leaves, only the audit entries are missing."""
    try:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        udp.bind(("0.0.0.0", DNS_PORT))
        tcp = Server(("0.0.0.0", DNS_PORT), DnsTcpHandler)
    except OSError as e:
        emit({"event": "dns-unavailable", "reason": str(e)})
        return
    threading.Thread(target=serve_dns_udp, args=(udp,), daemon=True).start()
    threading.Thread(target=tcp.serve_forever, daemon=True).start()


def main():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    load(force=True)
    reload_on_sighup()
    start_dns()
    with Server(("0.0.0.0", PORT), Handler) as server:
        emit({"event": "listening", "port": PORT, "dnsPort": DNS_PORT})
        server.serve_forever()


if __name__ == "__main__":
    main()
