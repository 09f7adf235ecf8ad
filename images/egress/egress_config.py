"""The proxy's configuration: one plugin's allow-list, written by the controller (egress/proxy.ts).

{"generation", "plugin", "subnet", "hosts": ["host:port", "*.suffix:port"], "maxConnections",
 "detached"}. Host entries are normalised here as in the controller (egress/hosts.ts): name in
lower case without a trailing dot, port as a plain number, duplicates dropped; so every
spelling of an entry is that entry, and a name a plugin asks for is compared in the same form.
"""
import ipaddress
import json
import re

NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,252}$")


class Config:
    __slots__ = ("generation", "plugin", "subnet", "hosts", "max", "detached")

    def __init__(self, generation, plugin, subnet, hosts, max_connections, detached):
        self.generation, self.plugin, self.subnet = generation, plugin, subnet
        self.hosts, self.max, self.detached = hosts, max_connections, detached


def normalize_name(name):
    """A DNS name or IPv4 literal in the form entries use; ValueError if it is neither."""
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not NAME.match(name):
        raise ValueError("bad host name")
    return name


def normalize_entry(entry):
    """`Host.Example.:0443` -> `host.example:443`; None for an entry that is not host:port."""
    name, sep, port = str(entry).strip().rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536:
        return None
    wildcard = name.startswith("*.")
    try:
        name = normalize_name(name[2:] if wildcard else name)
    except ValueError:
        return None
    return ("*." if wildcard else "") + name + ":" + str(int(port))


def parse(text):
    cfg = json.loads(text)
    hosts = []
    for h in cfg.get("hosts", []):
        n = normalize_entry(h)
        if n is not None and n not in hosts:
            hosts.append(n)
    return Config(
        generation=int(cfg.get("generation", 0)),
        plugin=str(cfg["plugin"]),
        subnet=ipaddress.ip_network(cfg["subnet"], strict=False),
        hosts=tuple(hosts),
        max_connections=int(cfg.get("maxConnections", 0)),
        detached=bool(cfg.get("detached", False)),
    )


def allowed(hosts, host, port):
    """Exact `host:port`, or `*.suffix:port` for names strictly below suffix. Both sides normalised."""
    for entry in hosts:
        name, _, p = entry.rpartition(":")
        if int(p) != port:
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


def forbidden_address(ip, subnet):
    """Addresses the proxy never connects to, whatever name led there: its own host's loopback,
    link-local (cloud metadata services), unspecified, multicast, reserved, and the plugin's own network."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return True
    return ip.version == subnet.version and ip in subnet
