"""LogoMesh egress proxy: one plugin's only way out. HTTP (absolute-URI requests) and CONNECT.

Each networked plugin has its own proxy, on the plugin's own network and on a way-out bridge;
a connection is served only if it comes from the plugin's network to the proxy's address on
it. The controller writes the allow-list to CONFIG; reloads and the cuts they make are in
egress_state.py.

Bounds, all per plugin because the proxy is: at most maxConnections connections at a time,
counted from accept (requests still being read count); the whole request head within
HEAD_TIMEOUT seconds of accept; over either, the connection is refused at once. Threads,
memory and CPU are the container's own limits (egress/proxy.ts sizes them from maxConnections).

The proxy is also the plugin's only DNS server (egress_dns.py). One JSON line on stdout per
decision (egress_report.py): {"plugin", "host", "port", "method", "result", "reason"}, result
allowed, denied, failed or cut; and {"event": "connections", "open"} when the number of open
connections changed (egress_state.py).
"""
import ipaddress
import os
import signal
import socket
import threading
import time

from egress_config import forbidden_address
from egress_dns import Dns
from egress_http import Refused, absolute_target, forwarded_head, parse_head, read_head, split_host_port
from egress_report import Reporter, emit
from egress_state import Conn, State

CONFIG = os.environ.get("LOGOMESH_EGRESS_CONFIG", "/etc/logomesh-egress/config.json")
PORT = int(os.environ.get("LOGOMESH_EGRESS_PORT", "3128"))
DNS_PORT = int(os.environ.get("LOGOMESH_EGRESS_DNS_PORT", "53"))
HEAD_TIMEOUT = float(os.environ.get("LOGOMESH_EGRESS_HEAD_TIMEOUT", "10"))
CONNECT_TIMEOUT = 10
IDLE_TIMEOUT = 600
# Each relay thread holds a buffer this size while it waits: small, so that a connection costs
# little of the proxy's memory budget (proxy.ts gives 256 KiB a connection).
RELAY_CHUNK = 16 * 1024
STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 429: "Too Many Requests", 431: "Request Header Fields Too Large", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable"}

# Threads wait on sockets and copy RELAY_CHUNK bytes at a time: a small stack is plenty.
threading.stack_size(256 * 1024)

state = State(CONFIG)
reporter = Reporter()


def report(decision):
    cfg = state.config()
    reporter.decision({"plugin": cfg.plugin if cfg else None, **decision})


def respond(client, status, reason):
    body = (reason + "\n").encode()
    head = f"HTTP/1.1 {status} {STATUS_TEXT.get(status, 'Error')}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\nX-LogoMesh-Egress: {reason}\r\n\r\n"
    try:
        client.sendall(head.encode() + body)
    except OSError:
        pass


def refuse_at_accept(client, status, reason):
    """Refuse without a thread or a read: a best-effort answer, then close."""
    report({"host": None, "port": None, "method": None, "result": "failed" if status >= 500 else "denied", "reason": reason})
    try:
        client.setblocking(False)
        client.send(f"HTTP/1.1 {status} {STATUS_TEXT[status]}\r\nContent-Length: 0\r\nConnection: close\r\nX-LogoMesh-Egress: {reason}\r\n\r\n".encode())
    except OSError:
        pass
    client.close()


def on_accept(client, peer):
    """Count the connection from here, or refuse it now: the plugin's budget covers requests
    still being read, so slow or unfinished ones cannot pile up past it."""
    state.load()
    try:
        local = client.getsockname()[0]
    except OSError:
        client.close()
        return
    if not state.known(local, peer[0]):
        refuse_at_accept(client, 403, "unknown-network")
        return
    if not state.count():
        refuse_at_accept(client, 429, "max-connections")
        return
    try:
        threading.Thread(target=serve, args=(client, time.monotonic() + HEAD_TIMEOUT), daemon=True).start()
    except RuntimeError:
        state.release()
        refuse_at_accept(client, 503, "proxy-busy")


def connect(host, port):
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise Refused(502, "name-not-resolved")
    subnet = state.config().subnet
    last = None
    for family, socktype, proto, _, addr in infos:
        if forbidden_address(ipaddress.ip_address(addr[0]), subnet):
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


def relay(client, upstream):
    client.settimeout(IDLE_TIMEOUT)

    def pipe(src, dst):
        try:
            while True:
                data = src.recv(RELAY_CHUNK)
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


def serve(client, deadline):
    decision = {"host": None, "port": None, "method": None}
    conn = None
    try:
        head, rest = read_head(client, deadline)
        client.settimeout(IDLE_TIMEOUT)
        method, target, version, headers = parse_head(head)
        decision["method"] = method
        if method == "CONNECT":
            if "@" in target:
                raise Refused(400, "userinfo")
            try:
                host, port = split_host_port(target, None)
            except ValueError:
                raise Refused(400, "bad-host")
            decision.update(host=host, port=port)
            out = None
        else:
            host, port, path = absolute_target(target)
            decision.update(host=host, port=port)
            out = forwarded_head(method, path, version, headers, host, port)
        conn = state.admit(Conn(host, port, method, client))
        upstream = connect(host, port)
        with upstream:
            state.connected(conn, upstream)
            report({**decision, "result": "allowed", "reason": "allow-list"})
            if out is None:
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                out = b""
            upstream.sendall(out + rest)
            relay(client, upstream)
    except Refused as r:
        report({**decision, "result": "failed" if r.status >= 500 else "denied", "reason": r.reason})
        respond(client, r.status, r.reason)
    except OSError as e:
        # A cut connection's sockets fail by design; the cut is already reported.
        if conn is None or conn.cut is None:
            reason = "incomplete-request" if decision["host"] is None else f"upstream: {e.__class__.__name__}"
            report({**decision, "result": "failed", "reason": reason})
    finally:
        state.release(conn)
        client.close()


def main():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    state.load(force=True)
    state.reload_on_sighup()
    state.report_connections()
    dns_error = Dns(DNS_PORT, state.known, report).start()
    if dns_error:
        emit({"event": "dns-unavailable", "reason": dns_error})
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", PORT))
    srv.listen(128)
    emit({"event": "listening", "port": PORT, "dnsPort": DNS_PORT})
    while True:
        try:
            client, peer = srv.accept()
        except OSError:
            time.sleep(0.01)  # out of file handles: let connections end
            continue
        on_accept(client, peer)


if __name__ == "__main__":
    main()
