#!/usr/bin/env bash
# End-to-end tests of `logomesh kube render` on a real Kubernetes cluster: the cluster that
# KUBECONFIG names (kind, k3s, or any other). Skipped, with exit 0 and a message saying so,
# when KUBECONFIG is not set: no cluster can run on LogoMesh's own CI machines.
#
# The cluster needs (docs/kubernetes.md#end-to-end-tests):
#   - a CNI that enforces NetworkPolicy (Calico, Cilium, ...: a CNI that ignores them fails
#     the network tests, as it should), and the Security Profiles Operator >= v0.9;
#   - the images: built here on the local Docker engine, then loaded into a kind cluster
#     (LOGOMESH_E2E_KIND=<kind cluster name>) or pushed to LOGOMESH_E2E_REGISTRY (a prefix
#     the nodes pull from, such as registry.example.com/logomesh).
# Optional: LOGOMESH_E2E_POD_CIDR (default 10.244.0.0/16, kind's), LOGOMESH_E2E_ARCH (amd64),
# LOGOMESH_E2E_NAMESPACE (default lm-e2e-<random>; deleted at the end).
# Extra arguments go to vitest (e.g. -t 'OOM').
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${KUBECONFIG:-}" ]; then
  echo "test/kube/e2e.sh: SKIPPED: KUBECONFIG is not set, so there is no cluster to run the Kubernetes end-to-end tests against."
  echo "test/kube/e2e.sh: set KUBECONFIG to a cluster's kubeconfig (see docs/kubernetes.md#end-to-end-tests) to run them."
  exit 0
fi

fail() { echo "test/kube/e2e.sh: $*" >&2; exit 1; }

IFS=: read -r -a configs <<<"$KUBECONFIG"
for f in "${configs[@]}"; do
  [ -n "$f" ] && [ ! -r "$f" ] && fail "KUBECONFIG names $f, which cannot be read"
done
command -v kubectl >/dev/null || fail "kubectl is not on PATH"
command -v docker >/dev/null || fail "docker is not on PATH: the images are built on the local engine"
if [ -n "${LOGOMESH_E2E_KIND:-}" ]; then
  command -v kind >/dev/null || fail "LOGOMESH_E2E_KIND is set but kind is not on PATH"
elif [ -z "${LOGOMESH_E2E_REGISTRY:-}" ]; then
  fail "set LOGOMESH_E2E_KIND=<kind cluster name> (images loaded with kind load) or LOGOMESH_E2E_REGISTRY=<prefix the nodes pull from> (images pushed)"
fi
kubectl version --request-timeout=15s >/dev/null 2>&1 || fail "the cluster in KUBECONFIG ($(kubectl config current-context 2>/dev/null || echo 'no current context')) does not answer"

echo "test/kube/e2e.sh: cluster $(kubectl config current-context), server $(kubectl version -o json --request-timeout=15s | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | tail -1)"
exec npx vitest run --config test/kube/vitest.config.ts "$@"
