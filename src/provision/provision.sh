#!/usr/bin/env bash
# Provision what LogoMesh needs from the host, idempotently:
#   1. a Docker engine that answers (DOCKER_HOST, /var/run/docker.sock, or a dockerd we start),
#   2. the compose v2 CLI plugin,
#   3. the base image debian:bookworm-slim (pulled, or built locally from Debian packages),
#   4. a kernel log burst large enough for seccomp kill records (kernel.printk_ratelimit_burst),
#   5. kernel audit rules that report what the kernel refuses plugins (src/provision/kernel-audit.rules),
#   6. gVisor's runsc, registered with the engine, for isolation level 3,
#   7. the host firewall rules that drop what reaches the host from a plugin network
#      (src/provision/egress-firewall.rules),
#   8. Debian's chromium, the browser the console's tests drive (docs/console.md),
#   9. Debian's protobuf-compiler (protoc), for descriptor sets of declared protobuf message
#      types (docs/data-bridge.md; test/vectors/protobuf/build.sh).
# Every step is a no-op when its result is already there, so `npm start`, `npm test` and
# .ci/run can all call it on every run.
#
# Usage: provision.sh [engine|compose|base|audit|gvisor|firewall|acl|chromium|protoc|run|all]   (default: all)
#   run: what running LogoMesh needs (all but chromium, which only the console's tests use);
#   all: run's steps and chromium (npm test, .ci/run).
# Environment:
#   LOGOMESH_ENGINE_TIMEOUT   seconds to wait for a started dockerd (default 60)
#   LOGOMESH_PULL_TIMEOUT     seconds to try pulling the base image (default 20)
#   LOGOMESH_DOCKERD_LOG      where a dockerd we start logs (default /var/log/logomesh-dockerd.log)
#   LOGOMESH_PRINTK_BURST     the least kernel.printk_ratelimit_burst to set (default 1000)
#   LOGOMESH_KERNEL_AUDIT     0: do not load the kernel audit rules (default 1)
#   LOGOMESH_GVISOR           0: do not install and register gVisor's runsc (default 1)
#   LOGOMESH_FIREWALL         0: do not add the host firewall rules for plugin networks (default 1)
#   LOGOMESH_CHROMIUM         0: do not install chromium for the console's browser tests (default 1)
#   LOGOMESH_PROTOC           0: do not install protoc (default 1)
set -euo pipefail

ENGINE_TIMEOUT=${LOGOMESH_ENGINE_TIMEOUT:-60}
PULL_TIMEOUT=${LOGOMESH_PULL_TIMEOUT:-20}
DOCKERD_LOG=${LOGOMESH_DOCKERD_LOG:-/var/log/logomesh-dockerd.log}
BASE_IMAGE=debian:bookworm-slim

say() { printf 'logomesh provision: %s\n' "$*" >&2; }
die() { printf 'logomesh provision: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }
is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

apt_install() {
  # apt-get update once per provisioning run: a fresh machine has empty package lists.
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

start_dockerd() {
  # A dockerd killed with the previous session leaves its pid file, and a new dockerd
  # refuses to start while it exists.
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    rm -f /var/run/docker.pid
    # containerd started by a previous dockerd can outlive it the same way.
    rm -f /var/run/docker/containerd/containerd.pid
  fi
  if [ ! -S /var/run/docker.sock ] || ! engine_answers; then
    say "starting dockerd (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid: the daemon must outlive the npm or CI process that started it.
    # live-restore: plugin containers keep running while the daemon restarts.
    setsid nohup dockerd --live-restore >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  local deadline=$((SECONDS + ENGINE_TIMEOUT))
  until engine_answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "dockerd did not answer within ${ENGINE_TIMEOUT}s; last lines of $DOCKERD_LOG:"
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "LM_ENGINE_UNAVAILABLE: the Docker engine did not start"
    fi
    sleep 0.5
  done
}

provision_engine() {
  if [ -n "${DOCKER_HOST:-}" ]; then
    engine_answers && return 0
    die "LM_ENGINE_UNAVAILABLE: DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
  fi
  if engine_answers; then return 0; fi
  if ! is_root || ! is_debian; then
    die "LM_ENGINE_UNAVAILABLE: no Docker engine answers at /var/run/docker.sock. Install and start Docker Engine (https://docs.docker.com/engine/install/), or on Debian run this script as root to install docker.io"
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing Debian's docker.io"
    apt_install docker.io
  fi
  start_dockerd
  say "engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
}

provision_compose() {
  if docker compose version >/dev/null 2>&1; then return 0; fi
  if ! is_root || ! is_debian; then
    die "'docker compose' (v2) is missing; install the Docker Compose plugin"
  fi
  # Bookworm only has the old Python docker-compose 1.29. Trixie's docker-compose package is
  # a static Go binary (compose v2) that installs on bookworm: fetch just that package with
  # a one-off sources list so the host's apt configuration stays untouched.
  say "installing compose v2 from Debian trixie's docker-compose package"
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache::Archives=$tmp/archives" -o "APT::Get::List-Cleanup=0")
  apt-get "${opts[@]}" update -qq
  (cd "$tmp" && apt-get "${opts[@]}" download docker-compose >/dev/null)
  dpkg --force-depends -i "$tmp"/docker-compose_*.deb >/dev/null
  rm -rf "$tmp"
  docker compose version >/dev/null 2>&1 || die "compose v2 was installed but 'docker compose' still fails"
  say "$(docker compose version)"
}

provision_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  say "pulling $BASE_IMAGE (up to ${PULL_TIMEOUT}s)"
  if timeout "$PULL_TIMEOUT" docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  # No registry answers: make the same image from Debian's own packages.
  if ! is_root || ! is_debian; then
    die "LM_IMAGE_BUILD: $BASE_IMAGE cannot be pulled and cannot be built here (needs root on Debian for mmdebstrap)"
  fi
  command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap
  say "no registry answered; building $BASE_IMAGE locally with mmdebstrap"
  mmdebstrap --quiet --variant=minbase bookworm - http://deb.debian.org/debian |
    docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "LM_IMAGE_BUILD: building $BASE_IMAGE failed"
}

# The kernel prints an audit record (a plugin process killed by seccomp) to its log only
# while printk_ratelimit() lets it: by default 10 records per 5 s for everything on the host,
# after which it drops them ("kauditd_printk_skb: N callbacks suppressed"). The controller
# reads those records to tell which plugin made which forbidden call, so a burst from one
# plugin could hide another's. Raise the burst (not the interval) when we may. Optional:
# without it LogoMesh works, and says when records were dropped.
PRINTK_BURST=${LOGOMESH_PRINTK_BURST:-1000}
provision_kernel_log() {
  local f=/proc/sys/kernel/printk_ratelimit_burst current
  [ -r "$f" ] || return 0
  current=$(cat "$f")
  [ "$current" -ge "$PRINTK_BURST" ] && return 0
  if is_root && (echo "$PRINTK_BURST" >"$f") 2>/dev/null; then
    say "kernel.printk_ratelimit_burst $current -> $PRINTK_BURST (seccomp kill records; see docs/operations.md)"
  else
    say "note: kernel.printk_ratelimit_burst is $current; the kernel may drop seccomp kill records in bursts (see docs/operations.md)"
  fi
}

# What the kernel refuses a plugin inside its sandbox (a write to a read-only place, a full
# /tmp, a limit reached) happens inside the container, where nothing else sees it. The
# kernel's audit subsystem can report it: load LogoMesh's rules (kernel-audit.rules, limited
# to plugin processes) and turn syscall auditing on. Needs auditctl (Debian's auditd).
# LOGOMESH_KERNEL_AUDIT=0 skips it; without it LogoMesh works and audits the rest.
AUDIT_RULES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kernel-audit.rules"
provision_kernel_audit() {
  [ "${LOGOMESH_KERNEL_AUDIT:-1}" = 0 ] && return 0
  if ! is_root; then
    say "note: not root: kernel audit rules for plugin denials not loaded (see docs/security.md)"
    return 0
  fi
  if ! command -v auditctl >/dev/null 2>&1; then
    is_debian || { say "note: no auditctl: kernel audit rules for plugin denials not loaded"; return 0; }
    say "installing Debian's auditd (for auditctl)"
    apt_install auditd || { say "warning: could not install auditd: kernel audit rules not loaded"; return 0; }
  fi
  local key
  for key in $(grep -o 'logomesh-[a-z]*' "$AUDIT_RULES" | sort -u); do auditctl -D -k "$key" >/dev/null 2>&1 || true; done
  if ! out=$(auditctl -R "$AUDIT_RULES" 2>&1); then
    say "warning: kernel audit rules not loaded: $out"
    return 0
  fi
  if [ -d /etc/audit/rules.d ]; then install -m 0640 "$AUDIT_RULES" /etc/audit/rules.d/90-logomesh.rules; fi
  if auditctl -s | grep -q '^enabled 0'; then auditctl -e 1 >/dev/null || say "warning: could not turn kernel auditing on"; fi
  # Without an audit daemon the kernel prints its records, within printk's rate limit, and
  # drops the rest in a flood (a fork bomb retrying). The daemon takes them all, into
  # /var/log/audit/audit.log (rotated by its auditd.conf), where the controller reads them.
  # On a host with systemd, installing the package started it already; elsewhere start it.
  if auditctl -s | grep -q '^pid 0$' && command -v auditd >/dev/null 2>&1; then
    auditd >/dev/null 2>&1 || say "warning: could not start auditd; the kernel prints the records instead"
  fi
  say "kernel audit rules for plugin denials loaded ($(auditctl -l | grep -c 'key=logomesh-') rules; auditing $(auditctl -s | sed -n 's/^enabled //p'); audit daemon pid $(auditctl -s | sed -n 's/^pid //p'))"
}

# Isolation level 3 (docs/security.md#isolation-levels) runs a plugin under gVisor's runsc:
# install Debian's runsc and register it with the engine (daemon.json "runtimes", then a
# reload), for plugins without network (--network=none; --fsgofer-host-uds lets a plugin
# reach its hub socket). A runsc the operator registered is left alone. LOGOMESH_GVISOR=0
# skips it; without it, a plugin that asks for runsc is refused with LM_RUNTIME_ISOLATION.
DAEMON_JSON=${LOGOMESH_DAEMON_JSON:-/etc/docker/daemon.json}
provision_gvisor() {
  [ "${LOGOMESH_GVISOR:-1}" = 0 ] && return 0
  [ -n "${DOCKER_HOST:-}" ] && return 0
  docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && return 0
  if ! is_root || ! is_debian; then
    say "note: gVisor (runsc) is not registered with the engine; plugins that ask for it are refused"
    return 0
  fi
  if ! command -v runsc >/dev/null 2>&1; then
    say "installing Debian's runsc (gVisor)"
    apt_install runsc || { say "warning: could not install runsc; plugins that ask for gVisor are refused"; return 0; }
  fi
  local status=0
  node -e '
    const fs = require("fs");
    const [file, runsc] = process.argv.slice(1);
    let c = {};
    try { c = JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) { if (e.code !== "ENOENT") { console.error(`${file}: ${e.message}`); process.exit(3); } }
    c.runtimes = c.runtimes || {};
    if (c.runtimes.runsc) process.exit(0);
    c.runtimes.runsc = { path: runsc, runtimeArgs: ["--network=none", "--fsgofer-host-uds"] };
    fs.mkdirSync(require("path").dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.logomesh-tmp`, JSON.stringify(c, null, 2) + "\n");
    fs.renameSync(`${file}.logomesh-tmp`, file);
  ' "$DAEMON_JSON" "$(command -v runsc)" || status=$?
  if [ "$status" != 0 ]; then say "warning: could not register runsc in $DAEMON_JSON"; return 0; fi
  # dockerd reloads "runtimes" on SIGHUP; running containers are not touched.
  pkill -HUP -x dockerd || true
  local i
  for i in $(seq 1 20); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && { say "gVisor (runsc) registered with the engine"; return 0; }
    sleep 0.5
  done
  say "warning: the engine did not pick up runsc from $DAEMON_JSON (is it started with another config file?)"
}

# A networked plugin's network has no address on the host (the engine's inhibit_ipv4), so the
# plugin has no route to it. These rules are the second layer: whatever reaches the host itself
# from a plugin network (bridges named lmp*) is dropped, whichever of the host's addresses it is
# sent to (docs/security.md#network). They live in the host's INPUT chain, which the engine never
# rewrites, and name no network, so they hold across engine restarts and for networks made later.
# The controller checks them at its first networked plugin and whenever the engine comes back,
# and runs this step again (as root) when one is missing.
FIREWALL_RULES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/egress-firewall.rules"
firewall_rules() { grep -Ev '^[[:space:]]*(#|$)' "$FIREWALL_RULES"; }
provision_firewall() {
  [ "${LOGOMESH_FIREWALL:-1}" = 0 ] && return 0
  # A remote engine's plugin networks are on its host, not this one.
  [ -n "${DOCKER_HOST:-}" ] && { say "note: DOCKER_HOST is set: add the host firewall rules of $FIREWALL_RULES on the engine's host"; return 0; }
  local tool chain rest spec out added=0 present=0 failed=0
  if ! is_root; then
    say "note: not root: the host firewall rules for plugin networks are not checked. Plugins still have no route to the host; for the second layer, run as root:"
    while read -r tool chain rest; do say "  $tool -C $chain $rest || $tool -I $chain 1 $rest"; done < <(firewall_rules)
    return 0
  fi
  if ! command -v iptables >/dev/null 2>&1 || ! command -v ip6tables >/dev/null 2>&1; then
    is_debian && { say "installing Debian's iptables"; apt_install iptables; }
  fi
  while read -r tool chain rest; do
    read -ra spec <<<"$rest"
    if ! command -v "$tool" >/dev/null 2>&1; then
      say "warning: no $tool: host firewall rule not added: $tool -I $chain 1 $rest"; failed=$((failed + 1)); continue
    fi
    if "$tool" -w 5 -C "$chain" "${spec[@]}" 2>/dev/null; then present=$((present + 1)); continue; fi
    if out=$("$tool" -w 5 -I "$chain" 1 "${spec[@]}" 2>&1); then
      say "host firewall: added '$tool -I $chain 1 $rest'"; added=$((added + 1))
    else
      say "warning: host firewall rule not added ($tool -I $chain 1 $rest): $out"; failed=$((failed + 1))
    fi
  done < <(firewall_rules)
  say "host firewall for plugin networks: $added added, $present already in place, $failed failed ($(iptables --version 2>/dev/null || echo 'no iptables'))"
}

# The console's browser tests (test/integration/console.test.ts) drive Debian's chromium
# with playwright-core: only tests need it, so a host where it cannot be installed goes on
# without it (those tests then skip, saying why).
CHROMIUM=/usr/bin/chromium
provision_chromium() {
  if [ "${LOGOMESH_CHROMIUM:-1}" = 0 ]; then say "chromium: skipped (LOGOMESH_CHROMIUM=0); the console's browser tests will skip"; return 0; fi
  if [ -x "$CHROMIUM" ]; then return 0; fi
  if ! is_root || ! is_debian; then
    say "chromium: $CHROMIUM is missing and cannot be installed here (needs root on Debian: apt-get install chromium); the console's browser tests will skip"
    return 0
  fi
  say "installing Debian's chromium for the console's browser tests"
  if ! apt_install chromium || [ ! -x "$CHROMIUM" ]; then
    say "warning: chromium could not be installed (apt-get install chromium failed); the console's browser tests will skip"
    return 0
  fi
  say "$("$CHROMIUM" --version 2>/dev/null || echo chromium)"
}

# setfacl (Debian's acl) for the shared-memory pool: each segment file's POSIX ACL names
# the plugin users that may open it (docs/shared-memory.md).
provision_acl() {
  command -v setfacl >/dev/null 2>&1 && return 0
  if ! is_root || ! is_debian; then
    say "note: no setfacl: plugins with coordination.sharedMemory will not start (install Debian's acl)"
    return 0
  fi
  say "installing Debian's acl (setfacl, for the shared-memory pool)"
  apt_install acl || say "warning: could not install acl: plugins with coordination.sharedMemory will not start"
}

# protoc turns a plugin's .proto files into the descriptor set its manifest names
# (coordination.protobuf); LogoMesh itself only reads descriptor sets, so it is optional.
provision_protoc() {
  [ "${LOGOMESH_PROTOC:-1}" = 0 ] && return 0
  command -v protoc >/dev/null 2>&1 && return 0
  if ! is_root || ! is_debian; then
    say "note: no protoc: install Debian's protobuf-compiler to build descriptor sets (docs/data-bridge.md)"
    return 0
  fi
  say "installing Debian's protobuf-compiler (protoc, for declared protobuf message types)"
  apt_install protobuf-compiler || say "warning: could not install protobuf-compiler: build descriptor sets elsewhere"
}

# Everything but the console's test browser, in the order the steps depend on each other.
provision_for_running() {
  provision_engine; provision_acl; provision_kernel_log; provision_kernel_audit; provision_gvisor; provision_firewall; provision_base_image
  (provision_compose) || say "warning: compose v2 is not available; 'docker compose up' will not work"
  provision_protoc
}

case "${1:-all}" in
  engine) provision_engine ;;
  compose) provision_engine; provision_compose ;;
  base) provision_engine; provision_base_image ;;
  # Compose is needed only for `docker compose up`; without it everything else still works.
  audit) provision_kernel_log; provision_kernel_audit ;;
  gvisor) provision_engine; provision_gvisor ;;
  firewall) provision_firewall ;;
  chromium) provision_chromium ;;
  acl) provision_acl ;;
  protoc) provision_protoc ;;
  run) provision_for_running ;;
  all) provision_for_running; provision_chromium ;;
  *) echo "usage: $0 [engine|compose|base|audit|gvisor|firewall|acl|chromium|protoc|run|all]" >&2; exit 2 ;;
esac
