#!/usr/bin/env bash
# `make demo`: a local cluster of its own, the operator, the `longrun` example, a cancel.
# Shows the phases as they change, the runner's log (read through the API, `kubectl flux logs -f`),
# then the cancellation record and the final checkpoint, and fails unless the cancel was Graceful.
# The cluster and the operator are always stopped on exit, also after a failure or Ctrl-C; their
# logs stay in .cluster-demo/. FLUX_NODE=real (the default) runs pods on a real kubelet from our
# images; FLUX_NODE=process on the process node (see README.md).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

readonly NAMESPACE=flux-demo
readonly EXECUTION=longrun
readonly RUN_BEFORE_CANCEL=4 # seconds of work before the cancel
readonly PY=$repo/.venv/bin/python

# Its own cluster directory: never the one the tests or a developer use.
export FLUX_CLUSTER_DIR=$repo/.cluster-demo
export KUBECONFIG=$FLUX_CLUSTER_DIR/kubeconfig

if [[ -t 1 ]]; then bold=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' green=$'\e[32m' reset=$'\e[0m'
else bold="" dim="" red="" green="" reset=""; fi
section() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\n%sFAILED: %s%s\n' "$red" "$*" "$reset" >&2; exit 1; }
clock() { date +%H:%M:%S.%3N; }

[[ -x $PY ]] || die "no virtualenv at .venv: run 'make demo' (it creates one)"
export FLUX_NODE=${FLUX_NODE:-real}
case $FLUX_NODE in
  real)
    node_args=(--with-node)
    node_desc="a real node: containerd, runc and a kubelet running our images"
    # The example workflow image: the runner image plus flux_examples (hack/build-images.sh).
    export FLUX_RUNNER_IMAGE=localhost/flux-examples:dev
    # One real kubelet per machine (its device-plugin directory is fixed): say so rather than fail later.
    # Read from /proc, as the host-clean guard does: no procps needed, and no silent pass without it.
    ! grep -qxs kubelet /proc/[0-9]*/comm || [[ -f $FLUX_CLUSTER_DIR/state.json ]] ||
      die "another real node runs on this machine (a kubelet is running): take it down, or run 'make demo FLUX_NODE=process'"
    hack/node-deps.sh # the Debian packages the node and the image build need (when missing)
    ;;
  process) node_args=() node_desc="the process node" ;;
  *) die "FLUX_NODE must be real or process, not $FLUX_NODE" ;;
esac
bin_dir=$(hack/build-binaries.sh "${node_args[@]}") # a cache hit after the first build
export PATH=$bin_dir:$repo/.venv/bin:$PATH

exec 3>&1 # the terminal, for the cleanup
operator_pid=""
watcher_pid=""
logs_pid=""
jaeger_pid=""
phase=""
started=$SECONDS

stop_process() {
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  pkill -TERM -P "$pid" 2>/dev/null || true # a pipeline's members (the watcher's kubectl) first
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do # up to 15 s, then no more patience
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM # a second Ctrl-C must not cut the teardown short
  set +e
  exec 1>&3 # the trap may fire inside a redirected call: print to the terminal again
  local interrupted=$((rc == 130 || rc == 143))
  if ((rc != 0 && !interrupted)) && [[ -f $FLUX_CLUSTER_DIR/logs/operator.log ]]; then
    printf '\n%sLast lines of the operator log:%s\n' "$dim" "$reset" >&2
    tail -n 30 "$FLUX_CLUSTER_DIR/logs/operator.log" >&2
  fi
  section "Cleaning up"
  stop_process "$watcher_pid"
  stop_process "$logs_pid"
  stop_process "$operator_pid"
  [[ -n $operator_pid ]] && info "operator stopped"
  if [[ -n $jaeger_pid ]]; then
    if ((rc == 0)) && [[ -t 0 ]]; then # keep Jaeger up until Enter, so the trace can be looked at
      read -r -p "    Jaeger keeps the trace until you press Enter ... " _ || true
    fi
    stop_process "$jaeger_pid"
    info "Jaeger stopped"
  fi
  "$PY" -m localcluster down | sed 's/^/    /'
  info "logs kept in ${FLUX_CLUSTER_DIR#"$repo"/}/logs"
  local verdict="demo passed"
  ((rc == 0)) || verdict="demo FAILED (exit $rc)"
  ((interrupted)) && verdict="demo interrupted"
  info "$verdict after $((SECONDS - started))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Returns once the phase matches the pattern $1 (left in $phase); fails on any other end.
await_phase() {
  local want=$1 timeout=$2 deadline=$((SECONDS + $2))
  phase=""
  while ((SECONDS < deadline)); do
    phase=$(kubectl get fx "$EXECUTION" -n "$NAMESPACE" -o jsonpath='{.status.phase}')
    [[ $phase =~ ^($want)$ ]] && return 0
    case $phase in
      Cancelled | Succeeded | Failed) die "$EXECUTION ended $phase while waiting for $want" ;;
      *) sleep 0.3 ;;
    esac
  done
  die "$EXECUTION not $want after ${timeout}s (last phase: ${phase:-none})"
}

# One line per phase change, with the time it was seen (runs in the background).
watch_phases() {
  local last="" phase
  kubectl get fx "$EXECUTION" -n "$NAMESPACE" --watch -o jsonpath='{.status.phase}{"\n"}' |
    while IFS= read -r phase; do
      [[ -z $phase || $phase == "$last" ]] && continue
      info "$(clock)  ${last:-(created)} -> $bold$phase$reset"
      last=$phase
    done
}

section "Starting a local cluster (control plane + $node_desc) in ${FLUX_CLUSTER_DIR#"$repo"/}/"
"$PY" -m localcluster down >/dev/null # a leftover from an interrupted run: start clean
"$PY" -m localcluster up | sed 's/^/    /'
kubectl apply --server-side --force-conflicts -f crds/ | sed 's/^/    /'
kubectl wait --for=condition=Established crd/executions.workflows.flux.dev crd/tenancypolicies.workflows.flux.dev \
  --timeout=60s | sed 's/^/    /'
# The admission policies exempt the operator: here it runs as the cluster admin, the kubeconfig's user.
"$PY" -m flux_api.tenancy --operator "$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}')" \
  | kubectl apply --server-side --force-conflicts -f - | sed 's/^/    /'

tracing_args=()
if [[ ${TRACING:-0} == 1 ]]; then
  section "Starting Jaeger (TRACING=1; log: ${FLUX_CLUSTER_DIR#"$repo"/}/logs/jaeger.log)"
  read -r otlp_port query_port grpc_port < <("$PY" -c \
    'from localcluster.procs import free_port; print(free_port(), free_port(), free_port())')
  jaeger_bin="$(hack/build-binaries.sh --with-jaeger)/jaeger"
  "$PY" -m localcluster.jaeger "$otlp_port" "$query_port" "$grpc_port" >"$FLUX_CLUSTER_DIR/jaeger.yaml"
  "$jaeger_bin" --config "file:$FLUX_CLUSTER_DIR/jaeger.yaml" >"$FLUX_CLUSTER_DIR/logs/jaeger.log" 2>&1 &
  jaeger_pid=$!
  for ((i = 0; i < 100; i++)); do
    curl -sf "http://127.0.0.1:$query_port/api/services" >/dev/null && break
    sleep 0.2
  done
  tracing_args=(--tracing-endpoint "http://127.0.0.1:$otlp_port")
  info "Jaeger on loopback: OTLP :$otlp_port, query :$query_port"
fi

section "Starting the operator (log: ${FLUX_CLUSTER_DIR#"$repo"/}/logs/operator.log)"
read -r metrics_port health_port < <("$PY" -c \
  'from localcluster.procs import free_port; print(free_port(), free_port())')
"$PY" -m flux_operator --metrics-port "$metrics_port" --health-port "$health_port" "${tracing_args[@]}" \
  >"$FLUX_CLUSTER_DIR/logs/operator.log" 2>&1 &
operator_pid=$!
"$PY" - "$health_port" "$operator_pid" <<'EOF' || die "the operator did not become healthy"
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            sys.exit(0)
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit("the operator exited early")
        time.sleep(0.2)
sys.exit(1)
EOF
info "operator running (pid $operator_pid, liveness on :$health_port, metrics on :$metrics_port)"

section "Running examples/manifests/$EXECUTION.yaml in namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" | sed 's/^/    /'
# The operator serves only namespaces that opted in (label mode: it runs without --namespace).
kubectl label namespace "$NAMESPACE" workflows.flux.dev/enabled=true | sed 's/^/    /'
# The admission policies name the TenancyPolicy kind as their parameter; for a few seconds after its CRD is
# established the API server's policy plugin may not know the kind yet ("failed to find resource referenced
# by paramKind") and refuses every write the policies check: try again for up to 30 s.
for ((i = 0; ; i++)); do
  if out=$(kubectl apply -n "$NAMESPACE" -f "examples/manifests/$EXECUTION.yaml" 2>&1); then
    sed 's/^/    /' <<<"$out"
    break
  fi
  [[ $out == *"failed to find resource referenced by paramKind"* && $i -lt 60 ]] || die "$out"
  sleep 0.5
done
# The runner's log through the API server, kept in a file: the pod (and with it its log) goes at the end.
runner_log=$FLUX_CLUSTER_DIR/logs/runner.log
kubectl flux logs "$EXECUTION" -n "$NAMESPACE" -f >"$runner_log" 2>"$runner_log.notes" &
logs_pid=$!
info "phase changes as they happen:"
watch_phases &
watcher_pid=$!
await_phase Running 90
sleep "$RUN_BEFORE_CANCEL"

section "Cancelling after ${RUN_BEFORE_CANCEL}s of work"
info "\$ kubectl patch fx longrun -n flux-demo --type merge -p '{\"spec\":{\"cancel\":{\"reason\":\"demo\"}}}'"
kubectl patch fx longrun -n flux-demo --type merge -p '{"spec":{"cancel":{"reason":"demo"}}}' | sed 's/^/    /'
await_phase 'Cancelled|Succeeded|Failed' 90
sleep 1 # let the watcher print the last change before it is stopped
stop_process "$watcher_pid"
watcher_pid=""

section "What the runner logged (kubectl flux logs $EXECUTION -f)"
for ((i = 0; i < 100; i++)); do # it ends by itself once the execution is terminal
  kill -0 "$logs_pid" 2>/dev/null || break
  sleep 0.1
done
stop_process "$logs_pid"
logs_pid=""
tail -n 6 "$runner_log" | sed 's/^/    /'
info "${dim}(${runner_log#"$repo"/})$reset"

section "status.cancellation and status.checkpoint"
kubectl get fx "$EXECUTION" -n "$NAMESPACE" -o json | "$PY" -c '
import json, sys
status = json.load(sys.stdin)["status"]
full = status.get("checkpoint") or {}
# The full list of steps is long and says little here: its length does.
checkpoint = {"state": full.get("state"), "sequence": full.get("sequence"),
              "steps": "%d completed" % len(full.get("steps") or []), "data": full.get("data")}
checkpoint.update((k, v) for k, v in full.items() if k not in checkpoint)
for title, block in (("cancellation", status.get("cancellation") or {}), ("checkpoint", checkpoint)):
    print(f"    {title}:")
    for line in json.dumps(block, indent=2).splitlines():
        print(f"      {line}")
'
outcome=$(kubectl get fx "$EXECUTION" -n "$NAMESPACE" -o jsonpath='{.status.cancellation.outcome}')

section "Result"
[[ $phase == Cancelled ]] || die "phase is $phase, expected Cancelled"
[[ $outcome == Graceful ]] || die "cancellation outcome is $outcome, expected Graceful"
printf '    %sphase Cancelled, outcome Graceful: the workflow cleaned up and stopped%s\n' "$green" "$reset"
if [[ -n $jaeger_pid ]]; then
  uid=$(kubectl get fx "$EXECUTION" -n "$NAMESPACE" -o jsonpath='{.metadata.uid}')
  trace_id=$("$PY" -c 'import sys; from flux_api import tracecontext
print(tracecontext.of_execution({}, sys.argv[1], 1.0)[0].trace_hex)' "$uid")
  section "Trace"
  "$PY" - "http://127.0.0.1:$query_port/api/traces/$trace_id" <<'PY' || die "the run's trace is not in Jaeger"
import json, sys, time, urllib.request
for _ in range(50):  # the operator and the runner batch their spans: a few seconds at most
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            spans = json.loads(r.read())["data"][0]["spans"]
    except Exception:
        spans = []
    names = sorted({s["operationName"].split(" ")[0] for s in spans})
    if {"execution", "cancel", "step"} <= set(names):
        print(f"    {len(spans)} spans in Jaeger: {', '.join(names)}")
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
PY
  info "trace id $bold$trace_id$reset (the execution's span, its cancel, its runner's steps)"
  info "open it: curl -s http://127.0.0.1:$query_port/api/traces/$trace_id | python3 -m json.tool"
fi
