"""Reporting decisions: one JSON line each on stdout, which the controller turns into audit entries.

A plugin decides how many decisions it causes (a connection flood, a DNS query loop), so
each proxy reports within a budget: up to BURST decisions at once and RATE a second after
that, one line each. Past the budget, decisions of one kind (result, reason, method) are
counted instead, and every WINDOW seconds one line reports each kind's count, the last such
decision and a few of the hosts among them. Nothing goes unreported; the lines stay bounded.
Cuts are always reported one by one: there are never more than the plugin's open connections.
"""
import json
import sys
import threading
import time

RATE = 20
BURST = 100
WINDOW = 1.0
SAMPLE_HOSTS = 5
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "DNS"}

_out = threading.Lock()


def emit(obj):
    # Threads emit concurrently; one line each, never interleaved, or the controller loses it.
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    with _out:
        sys.stdout.write(line)
        sys.stdout.flush()


class Reporter:
    def __init__(self, rate=RATE, burst=BURST, window=WINDOW):
        self.rate, self.burst, self.window = rate, burst, window
        self.tokens = float(burst)
        self.last = time.monotonic()
        self.pending = {}  # kind -> {"count", "since", "last", "hosts"}
        self.lock = threading.Lock()
        threading.Thread(target=self._flusher, daemon=True).start()

    def decision(self, d):
        if d.get("result") == "cut":
            emit(d)
            return
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                single = True
            else:
                single = False
                method = d.get("method") if d.get("method") in KNOWN_METHODS else "other"
                kind = (d.get("result"), d.get("reason"), method, d.get("transport"))
                p = self.pending.setdefault(kind, {"count": 0, "since": now, "hosts": []})
                p["count"] += 1
                p["last"] = d
                host = d.get("host")
                if host is not None and host not in p["hosts"] and len(p["hosts"]) < SAMPLE_HOSTS:
                    p["hosts"].append(host)
        if single:
            emit(d)

    def flush(self):
        with self.lock:
            pending, self.pending = self.pending, {}
        now = time.monotonic()
        for p in pending.values():
            emit({**p["last"], "count": p["count"], "windowMs": round((now - p["since"]) * 1000), "hosts": p["hosts"]})

    def _flusher(self):
        while True:
            time.sleep(self.window)
            self.flush()
