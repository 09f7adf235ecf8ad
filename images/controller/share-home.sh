#!/usr/bin/env bash
# Makes sure the compose controller's home is on a SHARED mount of the host, which compose.yaml
# needs to bind it with `propagation: rshared`: the controller mounts the shared-memory pool's
# tmpfs in the home from its container, and only a shared mount carries them back to the host,
# where the engine bind-mounts the pool into plugins. Without it `docker compose up` fails with
# "path ... is mounted on ... but it is not a shared mount".
#
# systemd makes every mount shared at boot, so there is nothing to do there. Elsewhere (a host
# or VM without systemd) this binds the home onto itself and marks that mount shared: a change
# to that one folder only, not to the host's other mounts, undone by `umount <home>` or a
# reboot. Idempotent. Usage, from the repository root (as compose runs):
#   bash images/controller/share-home.sh [home]   # default $LOGOMESH_COMPOSE_HOME or $PWD/.logomesh/compose
set -euo pipefail

home="${1:-${LOGOMESH_COMPOSE_HOME:-$PWD/.logomesh/compose}}"
case "$home" in
  /*) ;;
  *) echo "logomesh: the compose home must be an absolute path, found '$home'" >&2; exit 2 ;;
esac
mkdir -p "$home"
home="$(realpath "$home")"

propagation() { findmnt -n -o PROPAGATION --target "$home"; }
if [[ "$(propagation)" == shared* ]]; then
  echo "ready: $home is on a shared mount ($(findmnt -n -o TARGET --target "$home"))"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "logomesh: $home is on a mount that is not shared ($(findmnt -n -o TARGET --target "$home"), $(propagation)); compose.yaml binds it rshared for the shared-memory pool." >&2
  echo "  As root, run: bash images/controller/share-home.sh '$home'   (or: mount --make-rshared /)" >&2
  exit 1
fi
if [ "$(findmnt -n -o TARGET --target "$home")" != "$home" ]; then
  mount --bind "$home" "$home"
fi
mount --make-shared "$home"
echo "ready: $home bound onto itself as a shared mount"
