"""The proxy's request checks, allow-list matching and reporting, without sockets to the outside.

Run in the egress image (test/integration/egress-proxy.test.ts): python3 -m unittest discover.
"""
import ipaddress
import json
import os
import socket
import tempfile
import threading
import time
import unittest

import egress_report
import egress_state
from egress_config import allowed, forbidden_address, normalize_entry, parse
from egress_dns import Dns
from egress_http import Refused, absolute_target, forwarded_head, parse_head, read_head
from egress_state import Conn, State


def head_of(text):
    return parse_head(text.encode("latin-1"))


def refused(fn, *args):
    try:
        fn(*args)
    except Refused as r:
        return (r.status, r.reason)
    return None


class ReadHead(unittest.TestCase):
    def pair(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        return a, b

    def test_whole_head_and_the_body_bytes_after_it(self):
        a, b = self.pair()
        b.sendall(b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\nbody")
        self.assertEqual(read_head(a, time.monotonic() + 5), (b"GET http://a.example/ HTTP/1.1\r\nHost: a.example", b"body"))

    def test_a_head_trickling_in_is_cut_at_the_deadline_whatever_the_pace(self):
        a, b = self.pair()

        def trickle():
            for ch in b"GET http://a.example/ HTTP/1.1\r\n":
                try:
                    b.send(bytes([ch]))
                except OSError:
                    return
                time.sleep(0.05)

        threading.Thread(target=trickle, daemon=True).start()
        t = time.monotonic()
        self.assertEqual(refused(read_head, a, t + 0.5), (408, "head-timeout"))
        self.assertLess(time.monotonic() - t, 2)

    def test_bare_lf_line_ends_are_refused_at_once(self):
        a, b = self.pair()
        b.sendall(b"GET http://a.example/ HTTP/1.1\nHost: a.example\n\n")
        self.assertEqual(refused(read_head, a, time.monotonic() + 5), (400, "bare-lf"))

    def test_a_connection_ended_before_its_head_is_refused(self):
        a, b = self.pair()
        b.sendall(b"GET http://a.exa")
        b.shutdown(socket.SHUT_WR)
        self.assertEqual(refused(read_head, a, time.monotonic() + 5), (400, "incomplete-request"))

    def test_an_endless_head_is_refused(self):
        a, b = self.pair()
        threading.Thread(target=lambda: b.sendall(b"GET http://a.example/ HTTP/1.1\r\nX: " + b"a" * 70000), daemon=True).start()
        self.assertEqual(refused(read_head, a, time.monotonic() + 5), (431, "header-too-large"))


class ParseHead(unittest.TestCase):
    def test_request_line_and_headers(self):
        self.assertEqual(head_of("GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\nX-A:  b "), ("GET", "http://a.example/x", "HTTP/1.1", [("Host", "a.example"), ("X-A", "b")]))

    def test_malformed_heads(self):
        for text, reason in [
            ("GET  http://a/ HTTP/1.1", "bad-request"),
            ("GET http://a/ HTTP/2.0", "bad-request"),
            ("G(T http://a/ HTTP/1.1", "bad-request"),
            ("GET http://a/ HTTP/1.1\r\nHost: a\x00b", "bad-request"),
            ("GET http://a/ HTTP/1.1\r\nHost: a\rb", "bad-request"),
            ("GET http://a/ HTTP/1.1\r\nHost : a", "bad-header"),
            ("GET http://a/ HTTP/1.1\r\nX: a\r\n folded", "bad-header"),
            ("GET http://a/ HTTP/1.1\r\nno colon", "bad-header"),
        ]:
            with self.subTest(text=text):
                self.assertEqual(refused(head_of, text), (400, reason))


class Targets(unittest.TestCase):
    def test_absolute_uri(self):
        self.assertEqual(absolute_target("http://API.Example.:8080/p?q=1"), ("api.example", 8080, "/p?q=1"))
        self.assertEqual(absolute_target("http://a.example?q"), ("a.example", 80, "/?q"))
        self.assertEqual(absolute_target("HTTP://a.example"), ("a.example", 80, "/"))

    def test_refused_targets(self):
        for target, reason in [
            ("/p", "not-a-proxy-request"),
            ("https://a.example/", "not-a-proxy-request"),
            ("http://allowed.example@evil.example/", "userinfo"),
            ("http://evil.example#@allowed.example/", "bad-request"),
            ("http://a%2eexample/", "bad-host"),
            ("http://[::1]:80/", "bad-host"),
            ("http://a.example:0/", "bad-host"),
            ("http://a.example:99999/", "bad-host"),
        ]:
            with self.subTest(target=target):
                self.assertEqual(refused(absolute_target, target)[1], reason)


class Forwarded(unittest.TestCase):
    def fwd(self, headers, host="api.example", port=8080, method="POST"):
        return forwarded_head(method, "/p", "HTTP/1.1", headers, host, port).decode("latin-1")

    def test_host_header_is_the_allowed_host(self):
        out = self.fwd([("Host", "API.example.:8080"), ("Accept", "*/*")])
        self.assertEqual(out, "POST /p HTTP/1.1\r\nHost: api.example:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        self.assertIn("Host: api.example\r\n", self.fwd([], port=80))

    def test_fronting_through_the_host_header_is_refused(self):
        self.assertEqual(refused(self.fwd, [("Host", "evil.example:8080")]), (403, "host-mismatch"))
        self.assertEqual(refused(self.fwd, [("Host", "api.example:8081")]), (403, "host-mismatch"))
        self.assertEqual(refused(self.fwd, [("Host", "api.example")]), (403, "host-mismatch"))  # port 80, not 8080
        self.assertEqual(refused(self.fwd, [("Host", "api.example:8080"), ("Host", "evil.example")]), (400, "bad-request"))
        self.assertEqual(refused(self.fwd, [("Host", "user@api.example:8080")]), (403, "host-mismatch"))

    def test_chunked_bodies_keep_their_framing(self):
        out = self.fwd([("Host", "api.example:8080"), ("Transfer-Encoding", "Chunked")])
        self.assertIn("\r\nTransfer-Encoding: chunked\r\n", out)
        self.assertNotIn("Content-Length", out)

    def test_framing_two_parsers_could_read_differently_is_refused(self):
        self.assertEqual(refused(self.fwd, [("Transfer-Encoding", "gzip, chunked")]), (501, "unsupported-transfer-encoding"))
        self.assertEqual(refused(self.fwd, [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")]), (501, "unsupported-transfer-encoding"))
        self.assertEqual(refused(self.fwd, [("Transfer-Encoding", "chunked"), ("Content-Length", "5")]), (400, "bad-request"))
        self.assertEqual(refused(self.fwd, [("Content-Length", "5"), ("Content-Length", "6")]), (400, "bad-content-length"))
        self.assertEqual(refused(self.fwd, [("Content-Length", "-1")]), (400, "bad-content-length"))
        self.assertIn("Content-Length: 5\r\n", self.fwd([("Content-Length", "5"), ("Content-Length", "5")]))

    def test_hop_by_hop_headers_are_dropped(self):
        out = self.fwd([("Connection", "keep-alive, X-Secret"), ("X-Secret", "1"), ("Proxy-Authorization", "x"), ("Upgrade", "h2c"), ("Keep-Alive", "5"), ("X-Kept", "1")])
        self.assertEqual(out, "POST /p HTTP/1.1\r\nHost: api.example:8080\r\nX-Kept: 1\r\nConnection: close\r\n\r\n")


class AllowList(unittest.TestCase):
    def test_entries_in_normal_form(self):
        self.assertEqual(normalize_entry("API.Example.COM.:0443"), "api.example.com:443")
        self.assertEqual(normalize_entry("*.Example.com:80"), "*.example.com:80")
        self.assertIsNone(normalize_entry("api.example.com"))
        cfg = parse('{"plugin":"p","subnet":"172.30.0.0/16","hosts":["A.example:80","a.example.:80","b.example:80"],"maxConnections":2}')
        self.assertEqual(cfg.hosts, ("a.example:80", "b.example:80"))

    def test_matching(self):
        hosts = ("api.example:8080", "*.cdn.example:443")
        self.assertTrue(allowed(hosts, "api.example", 8080))
        self.assertFalse(allowed(hosts, "api.example", 8081))
        self.assertTrue(allowed(hosts, "x.cdn.example", 443))
        self.assertFalse(allowed(hosts, "cdn.example", 443))
        self.assertFalse(allowed(hosts, "xcdn.example", 443))

    def test_forbidden_addresses(self):
        net = ipaddress.ip_network("172.30.0.0/16")
        for a in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1", "240.0.0.1", "172.30.0.5"]:
            with self.subTest(a=a):
                self.assertTrue(forbidden_address(ipaddress.ip_address(a), net))
        self.assertFalse(forbidden_address(ipaddress.ip_address("172.31.0.5"), net))


class Reporting(unittest.TestCase):
    def setUp(self):
        self.lines = []
        self.real_emit = egress_report.emit
        egress_report.emit = self.lines.append
        self.addCleanup(setattr, egress_report, "emit", self.real_emit)

    def test_within_budget_one_line_each_then_counted_together(self):
        r = egress_report.Reporter(rate=0.001, burst=3, window=3600)
        for i in range(10):
            r.decision({"plugin": "p", "host": f"h{i}", "port": 1, "method": "CONNECT", "result": "denied", "reason": "not-in-allow-list"})
        for i in range(5):
            r.decision({"plugin": "p", "host": None, "port": None, "method": None, "result": "denied", "reason": "max-connections"})
        self.assertEqual([x["host"] for x in self.lines], ["h0", "h1", "h2"])
        r.flush()
        counted = {x["reason"]: x for x in self.lines[3:]}
        self.assertEqual(counted["not-in-allow-list"]["count"], 7)
        self.assertEqual(counted["not-in-allow-list"]["hosts"], ["h3", "h4", "h5", "h6", "h7"])
        self.assertEqual(counted["not-in-allow-list"]["host"], "h9")
        self.assertEqual(counted["max-connections"]["count"], 5)
        r.flush()
        self.assertEqual(len(self.lines), 5)  # nothing more to report

    def test_methods_a_plugin_makes_up_do_not_make_new_kinds(self):
        r = egress_report.Reporter(rate=0.001, burst=0, window=3600)
        for i in range(50):
            r.decision({"plugin": "p", "host": None, "port": None, "method": f"X{i}", "result": "denied", "reason": "not-a-proxy-request"})
        r.flush()
        self.assertEqual(len(self.lines), 1)
        self.assertEqual(self.lines[0]["count"], 50)

    def test_cuts_are_always_reported_one_by_one(self):
        r = egress_report.Reporter(rate=0.001, burst=0, window=3600)
        r.decision({"plugin": "p", "host": "a", "port": 1, "method": "CONNECT", "result": "cut", "reason": "revoked"})
        self.assertEqual(len(self.lines), 1)


class DnsMessages(unittest.TestCase):
    def setUp(self):
        self.reports = []
        self.dns = Dns(53, lambda local, peer: True, self.reports.append)

    def query(self, name=b"\x04data\x05exfil\x07example\x00", flags=0x0100, qtype=16):
        return b"\x12\x34" + flags.to_bytes(2, "big") + b"\x00\x01\x00\x00\x00\x00\x00\x00" + name + qtype.to_bytes(2, "big") + b"\x00\x01"

    def test_every_query_is_answered_nxdomain_and_reported(self):
        reply = self.dns.answer("172.30.0.2", "172.30.0.3", self.query(), "udp")
        self.assertEqual(reply[3] & 0x0F, 3)
        self.assertEqual(self.reports[-1]["host"], "data.exfil.example")
        self.assertEqual(self.reports[-1]["qtype"], "TXT")

    def test_short_messages_and_responses_are_reported_and_not_answered(self):
        self.assertIsNone(self.dns.answer("172.30.0.2", "172.30.0.3", b"\x00" * 11, "udp"))
        self.assertIsNone(self.dns.answer("172.30.0.2", "172.30.0.3", self.query(flags=0x8180), "udp"))
        self.assertEqual([r["reason"] for r in self.reports], ["bad-request", "not-a-query"])


class StateAndReloads(unittest.TestCase):
    def setUp(self):
        self.lines = []
        self.addCleanup(setattr, egress_state, "emit", egress_state.emit)
        egress_state.emit = self.lines.append
        d = tempfile.mkdtemp()
        self.path = os.path.join(d, "config.json")
        self.state = State(self.path)

    def write(self, generation, hosts, max_connections=2, detached=False):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"generation": generation, "plugin": "p", "subnet": "172.30.0.0/16", "hosts": hosts, "maxConnections": max_connections, "detached": detached}, f)
        os.replace(tmp, self.path)
        self.state.load(force=True)

    def open_conn(self, host, port):
        plugin_side, client = socket.socketpair()
        upstream, far_side = socket.socketpair()
        for s in (plugin_side, client, upstream, far_side):
            self.addCleanup(s.close)
        conn = self.state.admit(Conn(host, port, "CONNECT", client))
        self.state.connected(conn, upstream)
        return conn, plugin_side, far_side

    def test_the_budget_counts_from_accept(self):
        self.write(1, ["a.example:443"], max_connections=2)
        self.assertTrue(self.state.count())
        self.assertTrue(self.state.count())
        self.assertFalse(self.state.count())
        self.state.release()
        self.assertTrue(self.state.count())

    def test_only_the_plugin_network_is_known(self):
        self.write(1, ["a.example:443"])
        self.assertTrue(self.state.known("172.30.0.2", "172.30.0.3"))
        self.assertFalse(self.state.known("172.31.0.2", "172.30.0.3"))
        self.assertFalse(self.state.known("172.30.0.2", "172.31.0.3"))

    def test_a_reload_cuts_what_the_new_list_no_longer_covers_in_any_spelling_then_says_so(self):
        self.write(1, ["a.example:443", "b.example:443"])
        revoked, plugin_side, far_side = self.open_conn("a.example", 443)
        kept, _, _ = self.open_conn("b.example", 443)
        self.write(2, ["B.Example.:443"])
        self.assertEqual((revoked.cut, kept.cut), ("revoked", None))
        plugin_side.settimeout(2)
        far_side.settimeout(2)
        self.assertEqual(plugin_side.recv(10), b"")
        self.assertEqual(far_side.recv(10), b"")
        self.assertEqual([l.get("result") or l.get("event") for l in self.lines[-2:]], ["cut", "config"])
        self.assertEqual(self.lines[-1]["generation"], 2)
        self.assertEqual(refused(self.state.admit, Conn("a.example", 443, "CONNECT", None)), (403, "not-in-allow-list"))

    def test_open_connections_are_reported_when_they_change_and_at_once_at_the_budget(self):
        self.write(1, ["a.example:443"], max_connections=2)
        self.state.report_connections(every=30)  # only the budget wakes it within this test
        deadline = time.monotonic() + 5
        while not any(l.get("event") == "connections" for l in self.lines) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(self.state.count())
        self.assertTrue(self.state.count())  # the budget: reported now, not in 30 s
        while [l.get("open") for l in self.lines if l.get("event") == "connections"][-1:] != [2] and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual([l["open"] for l in self.lines if l.get("event") == "connections"], [0, 2])

    def test_detached_cuts_everything_and_counts_nothing_more(self):
        self.write(1, ["a.example:443"])
        conn, _, _ = self.open_conn("a.example", 443)
        self.write(2, [], detached=True)
        self.assertEqual(conn.cut, "detached")
        self.assertFalse(self.state.count())
        self.assertEqual(refused(self.state.admit, Conn("a.example", 443, "CONNECT", None)), (403, "detached"))


if __name__ == "__main__":
    unittest.main()
