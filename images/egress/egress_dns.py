"""DNS: the proxy answers, never forwards.

A plugin's container names the proxy as its only name server, and the engine's resolver in
the container passes it every name it does not know itself, from the plugin's own address.
Every query is answered NXDOMAIN with no records, so a lookup fails at once and carries no
data out, and every message is reported: queries (with name and type), messages too short to
be one or carrying the response flag (never answered, so that two resolvers can't be made to
loop), and TCP connections over the budget.
"""
import socket
import struct
import threading

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python 3.11 does not export it
NXDOMAIN = 3
FORMERR = 1
TCP_TIMEOUT = 5
TCP_MAX_QUERIES = 16
TCP_MAX_CONNECTIONS = 4
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
    (qdcount,) = struct.unpack("!H", msg[4:6])
    if qdcount != 1:
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


def response(msg, rcode, question_end):
    """The query's id, opcode and RD, QR set, no records; the question echoed when there is one."""
    (flags,) = struct.unpack("!H", msg[2:4])
    qdcount = 1 if question_end > 12 else 0
    return msg[:2] + struct.pack("!HHHHH", 0x8000 | (flags & 0x7900) | rcode, qdcount, 0, 0, 0) + msg[12:question_end]


class Dns:
    def __init__(self, port, known, report):
        """`known(local, peer)`: does the message come from the plugin's network to the proxy's
        address on it? `report(decision)`: hands a decision to the reporter."""
        self.port, self.known, self.report = port, known, report
        self.tcp_slots = threading.BoundedSemaphore(TCP_MAX_CONNECTIONS)

    def answer(self, local, peer, msg, transport):
        """The reply to one DNS message, or None; every message is reported."""
        base = {"host": None, "port": None, "method": "DNS", "transport": transport, "result": "denied"}
        if not self.known(local, peer):
            base["reason"] = "unknown-network"
        if len(msg) < 12:
            self.report({**base, "reason": base.get("reason", "bad-request")})
            return None
        if msg[2] & 0x80:
            self.report({**base, "reason": base.get("reason", "not-a-query")})
            return None
        try:
            name, qtype, end = parse_question(msg)
        except ValueError:
            self.report({**base, "reason": base.get("reason", "bad-request")})
            return response(msg, FORMERR, 12)
        self.report({**base, "host": name, "qtype": QTYPES.get(qtype, str(qtype)), "reason": base.get("reason", "no-dns")})
        return response(msg, NXDOMAIN, end)

    def serve_udp(self, sock):
        while True:
            try:
                msg, anc, _, peer = sock.recvmsg(4096, socket.CMSG_SPACE(12))
                local = pktinfo_destination(anc)
                reply = self.answer(local, peer[0], msg, "udp") if local else None
                if reply is not None:
                    # Answer from the address asked, whatever the routing table would pick.
                    src = struct.pack("@i4s4s", 0, socket.inet_aton(local), bytes(4))
                    sock.sendmsg([reply], [(socket.IPPROTO_IP, IP_PKTINFO, src)], 0, peer)
            except (OSError, ValueError):
                continue

    def serve_tcp(self, sock):
        while True:
            try:
                c, peer = sock.accept()
            except OSError:
                continue
            if not self.tcp_slots.acquire(blocking=False):
                self.report({"host": None, "port": None, "method": "DNS", "transport": "tcp", "result": "denied", "reason": "dns-busy"})
                c.close()
                continue
            try:
                threading.Thread(target=self.tcp_connection, args=(c, peer[0]), daemon=True).start()
            except RuntimeError:
                self.tcp_slots.release()
                c.close()

    def tcp_connection(self, c, peer):
        """A few length-prefixed queries per connection, each answered like over UDP."""
        try:
            c.settimeout(TCP_TIMEOUT)
            local = c.getsockname()[0]
            for _ in range(TCP_MAX_QUERIES):
                head = recv_exact(c, 2)
                msg = head and recv_exact(c, struct.unpack("!H", head)[0])
                reply = msg and self.answer(local, peer, msg, "tcp")
                if not reply:
                    return
                c.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            c.close()
            self.tcp_slots.release()

    def start(self):
        """Listen on the port, UDP and TCP; the reason it can't, or None. Binding a port under 1024
        as nobody needs the container's net.ipv4.ip_unprivileged_port_start lowered (proxy.ts sets
        it). Without DNS the plugin's lookups time out instead: still nothing leaves."""
        try:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            udp.bind(("0.0.0.0", self.port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind(("0.0.0.0", self.port))
            tcp.listen(16)
        except OSError as e:
            return str(e)
        threading.Thread(target=self.serve_udp, args=(udp,), daemon=True).start()
        threading.Thread(target=self.serve_tcp, args=(tcp,), daemon=True).start()
        return None


def pktinfo_destination(ancdata):
    """The address a datagram was sent to (IP_PKTINFO's ipi_addr): the proxy's address on the plugin network."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntoa(data[8:12])
    return None


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf
