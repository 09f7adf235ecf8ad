"""The proxy's state: the config as last loaded, the connections it counts, the ones it
admitted; and reloads, which cut the admitted connections the new config no longer covers.

The controller replaces the config file by rename; the proxy re-reads it when it changes
(checked on every new connection) and on SIGHUP. A reload cuts every open connection the new
list no longer covers (a revoked host; every one once the plugin is detached), then reports
{"event": "config", "generation"}: the controller takes it as "applied, and what it took away
is closed".
"""
import ipaddress
import os
import signal
import socket
import struct
import threading

from egress_config import allowed, parse
from egress_http import Refused
from egress_report import emit

COUNT_EVERY = 0.25  # seconds between two reports of the open connections, at most


class Conn:
    """An admitted connection: what it was allowed for, and its sockets, so a reload can cut it."""

    __slots__ = ("host", "port", "method", "client", "upstream", "cut")

    def __init__(self, host, port, method, client):
        self.host, self.port, self.method, self.client = host, port, method, client
        self.upstream = None  # set once connected; a cut before that refuses the connection
        self.cut = None  # why it was cut: "revoked" or "detached"


def verdict(conn, cfg):
    """Why an open connection may not stay open under this config, or None."""
    if cfg.detached:
        return "detached"
    if not allowed(cfg.hosts, conn.host, conn.port):
        return "revoked"
    return None


def cut(conn, plugin):
    """End both sides now. Shutdown wakes the relay threads blocked on them, which then end;
    linger 0 makes the final close a reset that drops whatever is still queued, so nothing
    more from the revoked host reaches the plugin, nor from the plugin the host."""
    emit({"plugin": plugin, "host": conn.host, "port": conn.port, "method": conn.method, "result": "cut", "reason": conn.cut})
    for s in (conn.client, conn.upstream):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class State:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()  # guards everything below
        self.stamp = None
        self.cfg = None
        self.opened = 0  # connections counted from accept, until their handler ends
        self.conns = set()  # admitted connections (Conn)
        self.changed = threading.Event()  # opened reached the budget: report the count now

    def config(self):
        with self.lock:
            return self.cfg

    def load(self, force=False):
        """Re-read the config if it changed."""
        try:
            st = os.stat(self.path)
        except OSError:
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self.lock:
            if not force and stamp == self.stamp:
                return
        try:
            with open(self.path, encoding="utf-8") as f:
                cfg = parse(f.read())
        except (OSError, ValueError, KeyError, TypeError) as e:
            emit({"event": "config-error", "reason": str(e)})
            return
        # The new list and the sweep under one lock: a connection admitted after this sees the
        # new list, one admitted before is swept.
        with self.lock:
            self.stamp, self.cfg = stamp, cfg
            doomed = []
            for conn in self.conns:
                if conn.cut is None:
                    conn.cut = verdict(conn, cfg)
                    if conn.cut is not None and conn.upstream is not None:
                        doomed.append(conn)
        for conn in doomed:
            cut(conn, cfg.plugin)
        emit({"event": "config", "generation": cfg.generation, "plugin": cfg.plugin, "hosts": len(cfg.hosts)})

    def reload_on_sighup(self):
        """Reload in a thread woken through a pipe, not in the signal handler itself: a second
        signal arriving while the handler held the lock would deadlock the main thread."""
        r, w = os.pipe()
        os.set_blocking(w, False)

        def on_sighup(*_):
            try:
                os.write(w, b"\0")
            except BlockingIOError:
                pass  # a reload is pending already

        def reloader():
            while True:
                os.read(r, 4096)  # several signals, one reload
                self.load(force=True)

        signal.signal(signal.SIGHUP, on_sighup)
        threading.Thread(target=reloader, daemon=True).start()

    def known(self, local, peer):
        """Does a connection come from the plugin's network, to the proxy's address on it?"""
        cfg = self.config()
        if cfg is None or local is None:
            return False
        try:
            return ipaddress.ip_address(local) in cfg.subnet and ipaddress.ip_address(peer) in cfg.subnet
        except ValueError:
            return False

    def count(self):
        """Count one more connection, if the plugin's budget has room; False otherwise."""
        with self.lock:
            if self.cfg is None or self.cfg.detached or self.opened >= self.cfg.max:
                return False
            self.opened += 1
            if self.opened >= self.cfg.max:
                self.changed.set()
            return True

    def release(self, conn=None):
        with self.lock:
            self.opened -= 1
            if conn is not None:
                self.conns.discard(conn)

    def report_connections(self, every=COUNT_EVERY):
        """Report the open connections whenever their number changed, at most every `every`
        seconds, and at once when they reach the budget: the controller's resource monitor
        reads them (io.networkConnections, the connection-limit violation)."""

        def reporter():
            last = None
            while True:
                self.changed.clear()
                with self.lock:
                    n = self.opened
                if n != last:
                    emit({"event": "connections", "open": n})
                    last = n
                self.changed.wait(every)

        threading.Thread(target=reporter, daemon=True).start()

    def admit(self, conn):
        """Check the connection against the list as it is now (it may have changed while the head was read)."""
        with self.lock:
            if self.cfg.detached:
                raise Refused(403, "detached")
            if not allowed(self.cfg.hosts, conn.host, conn.port):
                raise Refused(403, "not-in-allow-list")
            self.conns.add(conn)
        return conn

    def connected(self, conn, upstream):
        """Record the upstream socket, unless a reload cut the connection while it was being made."""
        with self.lock:
            if conn.cut is None:
                conn.upstream = upstream
                return
        raise Refused(403, conn.cut)
