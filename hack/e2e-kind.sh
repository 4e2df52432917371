#!/usr/bin/env bash
# The demo scenario on a real kind cluster (needs a Docker engine):
# build the operator, runner and example-workflow images, install the chart, run the `longrun` example, cancel it,
# and require phase Cancelled with outcome Graceful. The cluster is deleted on exit
# (set KEEP_CLUSTER=1 to keep it for debugging).
set -euo pipefail

cd "$(dirname "$0")/.."

readonly CLUSTER=flux-e2e
readonly RELEASE=flux-operator # the chart's fullname is then just "flux-operator"
readonly OPERATOR_NAMESPACE=flux-system
readonly EXEC_NAMESPACE=default
readonly EXECUTION=longrun
readonly OPERATOR_IMAGE=flux-operator:dev
readonly BASE_RUNNER_IMAGE=flux-runner:dev
readonly RUNNER_IMAGE=flux-examples:dev # the runner image plus the example workflows

log() { printf '[e2e-kind] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for tool in kind helm kubectl docker; do
  command -v "$tool" >/dev/null || die "'$tool' is not on PATH; install it first"
done
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable ('docker info' fails)"
compgen -G 'charts/flux-operator/crds/*.yaml' >/dev/null \
  || die "charts/flux-operator/crds/ has no CRD; copy crds/*.yaml there first"
[[ -f examples/manifests/$EXECUTION.yaml ]] || die "examples/manifests/$EXECUTION.yaml is missing"
# Never adopt (and then delete) a cluster this run did not create.
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  die "a kind cluster named $CLUSTER already exists; remove it with: kind delete cluster --name $CLUSTER"
fi

# A private kubeconfig: the user's current context is never touched.
workdir=$(mktemp -d)
export KUBECONFIG=$workdir/kubeconfig

show_diagnostics() {
  log "diagnostics:"
  kubectl get fx,pods -A -o wide || true
  kubectl -n "$EXEC_NAMESPACE" get fx "$EXECUTION" -o yaml || true
  kubectl -n "$OPERATOR_NAMESPACE" logs "deployment/$RELEASE" --tail=200 || true
}

cleanup() {
  local rc=$?
  if ((rc != 0)); then show_diagnostics; fi
  if [[ ${KEEP_CLUSTER:-0} == 1 ]]; then
    log "keeping cluster $CLUSTER (kubeconfig: $KUBECONFIG)"
  else
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" || log "could not delete cluster $CLUSTER"
    rm -rf "$workdir"
  fi
  exit "$rc"
}
trap cleanup EXIT

# Polls until the execution reaches $1; fails at once on any other terminal phase.
wait_for_phase() {
  local want=$1 timeout=$2 phase=""
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    phase=$(kubectl -n "$EXEC_NAMESPACE" get fx "$EXECUTION" -o jsonpath='{.status.phase}')
    [[ $phase == "$want" ]] && return 0
    case $phase in
      Cancelled | Succeeded | Failed) die "$EXECUTION ended $phase while waiting for $want" ;;
      *) ;; # no status yet, Pending, Running or Cancelling: keep polling
    esac
    sleep 2
  done
  die "$EXECUTION not $want after ${timeout}s (last phase: ${phase:-none})"
}

log "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 120s

log "building images"
docker build -f operator/Dockerfile -t "$OPERATOR_IMAGE" .
docker build -f runner/Dockerfile -t "$BASE_RUNNER_IMAGE" .
# The example workflows on top of the runner: the way users build their own workflow images.
docker build -f examples/Dockerfile --build-arg RUNNER_IMAGE="$BASE_RUNNER_IMAGE" -t "$RUNNER_IMAGE" .
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$RUNNER_IMAGE"

log "installing the chart"
# pullPolicy Never: the images exist only inside the kind node. The runner image has a
# non-latest tag, so runner pods default to IfNotPresent and use the loaded image too.
helm install "$RELEASE" charts/flux-operator \
  --namespace "$OPERATOR_NAMESPACE" --create-namespace \
  --set image.repository="${OPERATOR_IMAGE%:*}" \
  --set image.tag="${OPERATOR_IMAGE#*:}" \
  --set image.pullPolicy=Never \
  --set runner.image="$RUNNER_IMAGE"
kubectl -n "$OPERATOR_NAMESPACE" rollout status "deployment/$RELEASE" --timeout=180s

log "running $EXECUTION"
# A fresh install serves no namespace until one is labelled.
kubectl label namespace "$EXEC_NAMESPACE" workflows.flux.dev/enabled=true --overwrite
kubectl -n "$EXEC_NAMESPACE" apply -f "examples/manifests/$EXECUTION.yaml"
wait_for_phase Running 180

log "cancelling $EXECUTION"
kubectl -n "$EXEC_NAMESPACE" patch fx "$EXECUTION" --type merge -p '{"spec":{"cancel":{"reason":"e2e"}}}'
# The default grace period is 30s; a graceful stop is much faster, this only bounds a hang.
wait_for_phase Cancelled 120

outcome=$(kubectl -n "$EXEC_NAMESPACE" get fx "$EXECUTION" -o jsonpath='{.status.cancellation.outcome}')
kubectl -n "$EXEC_NAMESPACE" get fx "$EXECUTION" -o yaml
[[ $outcome == Graceful ]] || die "expected cancellation outcome Graceful, got '${outcome:-none}'"
log "PASS: $EXECUTION cancelled, outcome $outcome"
