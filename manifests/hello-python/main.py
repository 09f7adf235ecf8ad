"""hello-python: greets, then reports what the sandbox looks like from inside."""
import os
import resource


def cap_eff() -> str:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return line.split()[1]
    return "unknown"


soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
print(f"hello from {os.environ.get('LOGOMESH_PLUGIN_ID', '?')}")
print(f"uid={os.getuid()} capabilities={cap_eff()} open-files-limit={soft}")
