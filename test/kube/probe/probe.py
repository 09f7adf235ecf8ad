"""What a sandbox lets a process do, measured from inside it: one JSON line on stdout.

Used by test/kube/cluster.test.ts in a Pod rendered by `logomesh kube render`, and by
test/integration/kube-probe.test.ts in a Docker sandbox (which checks the probe itself).
Standard library only. Environment:
  PROBE_CONNECT     host:port,...  TCP connections to try directly
  PROBE_VIA_PROXY   host:port,...  CONNECT requests to send through $HTTPS_PROXY
  PROBE_ALLOCATE_MB               memory to allocate and touch after reporting
  PROBE_HOLD                      "1": sleep after reporting (a Pod stays Running to be read)
"""
import ctypes
import errno
import json
import os
import platform
import socket
import subprocess
import sys
import time

# System call numbers: the probe calls them directly, as an attack would.
SYSCALLS = {"x86_64": {"bpf": 321, "mount": 165}, "aarch64": {"bpf": 280, "mount": 40}}


def status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
                fields[key] = value.strip()
    return fields


def try_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        os.unlink(path)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def try_exec_in(folder):
    script = os.path.join(folder, "probe-exec.sh")
    try:
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(script, 0o755)
        return "ok" if subprocess.run([script]).returncode == 0 else "failed"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        try:
            os.unlink(script)
        except OSError:
            pass


def raw_syscall(name):
    numbers = SYSCALLS.get(platform.machine())
    if numbers is None:
        return "unknown-arch"
    code = "import ctypes,sys; libc=ctypes.CDLL(None, use_errno=True); r=libc.syscall(%d,0,0,0,0,0); sys.exit(0 if r==0 else 10+ctypes.get_errno())" % numbers[name]
    # In a child: a system call the profile kills must not end the probe.
    rc = subprocess.run([sys.executable, "-c", code]).returncode
    if rc < 0:
        return "signal-%d" % -rc
    if rc >= 10:
        return errno.errorcode.get(rc - 10, str(rc - 10))
    return "allowed"


def connect(target):
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__


def via_proxy(target):
    proxy = os.environ.get("HTTPS_PROXY", "")
    if not proxy.startswith("http://"):
        return "no-proxy"
    host, _, port = proxy[len("http://"):].rstrip("/").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
            line = s.makefile("rb").readline().decode("latin-1").strip()
            return line.split(" ")[1] if " " in line else line or "closed"
    except OSError as e:
        return "proxy-" + (errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__)


def tmp_size_mb():
    st = os.statvfs("/tmp")
    return round(st.f_blocks * st.f_frsize / (1024 * 1024))


def main():
    listed = lambda name: [t for t in os.environ.get(name, "").split(",") if t]
    facts = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "status": status(),
        "writeRoot": try_write("/usr/probe-write"),
        "writeTmp": try_write("/tmp/probe-write"),
        "execTmp": try_exec_in("/tmp"),
        "tmpSizeMB": tmp_size_mb(),
        "bpf": raw_syscall("bpf"),
        "mount": raw_syscall("mount"),
        "connect": {t: connect(t) for t in listed("PROBE_CONNECT")},
        "viaProxy": {t: via_proxy(t) for t in listed("PROBE_VIA_PROXY")},
        "serviceAccountToken": os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        "credentialReadable": os.access(os.environ.get("LOGOMESH_HUB_CREDENTIAL", "/nonexistent"), os.R_OK),
    }
    print(json.dumps({"probe": facts}), flush=True)
    mb = int(os.environ.get("PROBE_ALLOCATE_MB", "0"))
    if mb:
        chunks = []
        for _ in range(mb):
            chunk = bytearray(1024 * 1024)
            chunk[::4096] = b"\x01" * 256  # touch every page: calloc'd pages cost nothing until written
            chunks.append(chunk)
        print(json.dumps({"allocated": len(chunks)}), flush=True)
    if os.environ.get("PROBE_HOLD") == "1":
        time.sleep(3600)


main()
