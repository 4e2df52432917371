#!/usr/bin/env bash
# Builds the pinned control plane, etcd, helm and kubeconform from the Go module proxy
# into ~/.cache/flux-operator/<version>/bin. Only the first run pays; a half-made cache
# (interrupted build, missing or altered binary) is detected by its stamp and rebuilt.
# Prints the bin directory on stdout; progress goes to stderr.
#
#   hack/build-binaries.sh              the control plane and tools
#   hack/build-binaries.sh --with-kwok  also kwok (hack/kwok/go.mod), for the scale benchmarks
#   hack/build-binaries.sh --with-node  also the real node: kubelet (hack/kubelet), containerd with its
#                                       shim and ctr (hack/containerd), runc (hack/runc); run
#                                       hack/node-deps.sh first (runc needs cgo and libseccomp)
#   hack/build-binaries.sh --with-prometheus  also promtool and prometheus (hack/prometheus), without
#                                       service discovery: the alert rules' tests and the alert test
#   hack/build-binaries.sh --with-jaeger  also jaeger (hack/jaeger): the tracing test's collector and query API
#   hack/build-binaries.sh --with-kueue   also kueue (hack/kueue): the queueing tests' admission of runner pods
# The node set has a stamp of its own (.complete-node), so it never invalidates the control plane's.
set -euo pipefail

with_kwok=false
with_node=false
with_prometheus=false
with_jaeger=false
with_kueue=false
for arg in "$@"; do
  case $arg in
    --with-kwok) with_kwok=true ;;
    --with-node) with_node=true ;;
    --with-prometheus) with_prometheus=true ;;
    --with-jaeger) with_jaeger=true ;;
    --with-kueue) with_kueue=true ;;
    *) echo "usage: $0 [--with-kwok] [--with-node] [--with-prometheus] [--with-jaeger] [--with-kueue]" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")
[ -n "$k8s_version" ] || { echo "cannot read the pinned k8s.io/kubernetes version from hack/k8s/go.mod" >&2; exit 1; }
cache_root=${FLUX_CACHE_DIR:-$HOME/.cache/flux-operator}
bin_dir="$cache_root/$k8s_version/bin"
stamp="$bin_dir/.complete"
node_stamp="$bin_dir/.complete-node"
prometheus_stamp="$bin_dir/.complete-prometheus"
jaeger_stamp="$bin_dir/.complete-jaeger"
kueue_stamp="$bin_dir/.complete-kueue"

# name|module dir|package|cgo|build tags
targets=(
  "etcd|k8s|go.etcd.io/etcd/server/v3|0|"
  "kube-apiserver|k8s|k8s.io/kubernetes/cmd/kube-apiserver|0|"
  "kube-controller-manager|k8s|k8s.io/kubernetes/cmd/kube-controller-manager|0|"
  "kube-scheduler|k8s|k8s.io/kubernetes/cmd/kube-scheduler|0|"
  "kubectl|k8s|k8s.io/kubernetes/cmd/kubectl|0|"
  "helm|tools|helm.sh/helm/v3/cmd/helm|0|"
  "kubeconform|tools|github.com/yannh/kubeconform/cmd/kubeconform|0|"
)
if $with_kwok; then
  targets+=("kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|0|")
fi
# Without cgo containerd drops only the snapshotters it cannot use here; runc needs cgo for
# seccomp, which containerd 2 applies to every sandbox.
node_targets=(
  "kubelet|kubelet|k8s.io/kubernetes/cmd/kubelet|0|"
  "containerd|containerd|github.com/containerd/containerd/v2/cmd/containerd|0|no_btrfs,no_devmapper,no_zfs"
  "containerd-shim-runc-v2|containerd|github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2|0|no_btrfs,no_devmapper,no_zfs"
  "ctr|containerd|github.com/containerd/containerd/v2/cmd/ctr|0|no_btrfs,no_devmapper,no_zfs"
  "runc|runc|github.com/opencontainers/runc|1|seccomp"
)
# remove_all_sd: no cloud service discovery (its SDKs are most of the build); static and file targets remain.
prometheus_targets=(
  "promtool|prometheus|github.com/prometheus/prometheus/cmd/promtool|0|remove_all_sd"
  "prometheus|prometheus|github.com/prometheus/prometheus/cmd/prometheus|0|remove_all_sd"
)
jaeger_targets=("jaeger|jaeger|github.com/jaegertracing/jaeger/cmd/jaeger|0|")
kueue_targets=("kueue|kueue|sigs.k8s.io/kueue/cmd/kueue|0|")

log() { printf '[build-binaries] %s\n' "$*" >&2; }

# The pins are part of the key: editing a go.mod invalidates the cache.
pins_digest() { cat "$here/k8s/go.mod" "$here/k8s/go.sum" "$here/tools/go.mod" "$here/tools/go.sum" | sha256sum | cut -d' ' -f1; }
# kwok has pins of its own: editing them rebuilds kwok alone, not the control plane.
kwok_pins_digest() { cat "$here/kwok/go.mod" "$here/kwok/go.sum" | sha256sum | cut -d' ' -f1; }
# Each node module likewise: its own go.mod/go.sum are its key.
own_pins_digest() { cat "$here/$1/go.mod" "$here/$1/go.sum" | sha256sum | cut -d' ' -f1; }
module_digest() { case $1 in k8s|tools) pins_digest ;; kwok) kwok_pins_digest ;; *) own_pins_digest "$1" ;; esac; }
node_digest() { echo "$(own_pins_digest kubelet)+$(own_pins_digest containerd)+$(own_pins_digest runc)"; }
# The stamp covers every pin a requested target was built from.
stamp_digest() { if $with_kwok; then echo "$(pins_digest)+$(kwok_pins_digest)"; else pins_digest; fi; }

stamp_is_valid() {
  [ -f "$stamp" ] || return 1
  local head
  head=$(head -n1 "$stamp")
  # A stamp that also vouches for kwok is good for a build without it.
  [ "$head" = "pins $(stamp_digest)" ] || { ! $with_kwok && [ "${head%%+*}" = "pins $(pins_digest)" ]; } || return 1
  (cd "$bin_dir" && tail -n +2 "$stamp" | sha256sum --check --status) || return 1
  local t name
  for t in "${targets[@]}"; do
    name=${t%%|*}
    grep -q "  $name\$" "$stamp" || return 1
  done
}

node_stamp_is_valid() {
  [ -f "$node_stamp" ] && [ "$(head -n1 "$node_stamp")" = "pins $(node_digest)" ] || return 1
  (cd "$bin_dir" && tail -n +2 "$node_stamp" | sha256sum --check --status) || return 1
  local t
  for t in "${node_targets[@]}"; do grep -q "  ${t%%|*}\$" "$node_stamp" || return 1; done
}

# An extra set (prometheus, jaeger, kueue): its own module's pins, its own stamp.
extra_stamp_is_valid() {  # module stamp targets...
  local module=$1 stamp=$2 t
  shift 2
  [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "pins $(own_pins_digest "$module")" ] || return 1
  (cd "$bin_dir" && tail -n +2 "$stamp" | sha256sum --check --status) || return 1
  for t in "$@"; do grep -q "  ${t%%|*}\$" "$stamp" || return 1; done
}
prometheus_stamp_is_valid() { extra_stamp_is_valid prometheus "$prometheus_stamp" "${prometheus_targets[@]}"; }
jaeger_stamp_is_valid() { extra_stamp_is_valid jaeger "$jaeger_stamp" "${jaeger_targets[@]}"; }
kueue_stamp_is_valid() { extra_stamp_is_valid kueue "$kueue_stamp" "${kueue_targets[@]}"; }

write_extra_stamp() {  # module stamp targets...
  local module=$1 stamp=$2
  shift 2
  {
    echo "pins $(own_pins_digest "$module")"
    (cd "$bin_dir" && for t in "$@"; do sha256sum "${t%%|*}"; done)
  } >"$stamp.tmp"
  mv -f "$stamp.tmp" "$stamp"
}

all_wanted_are_valid() {
  stamp_is_valid && { ! $with_node || node_stamp_is_valid; } && { ! $with_prometheus || prometheus_stamp_is_valid; } \
    && { ! $with_jaeger || jaeger_stamp_is_valid; } && { ! $with_kueue || kueue_stamp_is_valid; }
}

if all_wanted_are_valid; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { log "go is required (the polyglot machine ships it)"; exit 1; }
mkdir -p "$bin_dir"
# One build at a time per cache (two builds into one bin directory break each other's files): a second
# waits for the first, then finds its work done. The go build of a script killed mid-compile keeps the lock
# until it ends, on purpose: it still writes into the cache.
exec 9>"$cache_root/.build-$k8s_version.lock"
if ! flock -n 9; then
  log "waiting for another build into $bin_dir"
  flock 9
  if all_wanted_are_valid; then
    echo "$bin_dir"
    exit 0
  fi
fi
# A valid control-plane stamp is left exactly as it is (it may also vouch for kwok).
main_ok=false
if stamp_is_valid; then main_ok=true; else rm -f "$stamp"; fi
$with_node && rm -f "$node_stamp"
$with_prometheus && rm -f "$prometheus_stamp"
$with_jaeger && rm -f "$jaeger_stamp"
$with_kueue && rm -f "$kueue_stamp"
minor=${k8s_version#v1.}; minor=${minor%%.*}
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# The module's own version string, for the binaries that stamp one (`containerd --version`, `runc --version`).
pinned() { awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2}' "$here/$1/go.mod"; }

export GOFLAGS=-mod=mod
all_targets=("${targets[@]}")
$with_node && all_targets+=("${node_targets[@]}")
$with_prometheus && all_targets+=("${prometheus_targets[@]}")
$with_jaeger && all_targets+=("${jaeger_targets[@]}")
$with_kueue && all_targets+=("${kueue_targets[@]}")
total=${#all_targets[@]}
i=0
start_all=$SECONDS
for t in "${all_targets[@]}"; do
  i=$((i + 1))
  IFS='|' read -r name module pkg cgo tags <<<"$t"
  # Cached only if built from these pins AND still the very bytes that build produced.
  if [ -x "$bin_dir/$name" ] && [ -f "$bin_dir/.$name.sum" ] && \
     [ "$(cat "$bin_dir/.$name.sum")" = "$(module_digest "$module") $(sha256sum <"$bin_dir/$name" | cut -d' ' -f1)" ]; then
    log "[$i/$total] $name: cached"
    continue
  fi
  log "[$i/$total] building $name ($pkg); a cold build of the control plane takes ~10 min on 2 cores"
  started=$SECONDS
  # A heartbeat, so a long compile is never a silent terminal. It ends with this script even when this one is
  # killed, never holds the build lock (fd 9), and never holds stdout (a caller's $(...) would wait for it).
  ( exec 9>&-; while sleep 30 && kill -0 $$ 2>/dev/null; do log "      still building $name ($((SECONDS - started))s)"; done ) >&2 &
  ticker=$!
  # Build beside the cache and rename into place: a killed build never leaves a half binary.
  case $module in
    k8s|kubelet) ldflags="-s -w $version_flags" ;;
    kwok) ldflags="-s -w" ;;  # kwok stamps its own version (pkg/consts)
    containerd) ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$(pinned containerd github.com/containerd/containerd/v2)" ;;
    runc) v=$(pinned runc github.com/opencontainers/runc); ldflags="-s -w -X main.version=${v#v}" ;;
    *) ldflags="-s -w" ;;
  esac
  if ! (cd "$here/$module" && CGO_ENABLED=$cgo go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$bin_dir/.$name.partial" "$pkg"); then
    kill "$ticker" 2>/dev/null || true
    log "building $name failed"
    exit 1
  fi
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  echo "$(module_digest "$module") $(sha256sum <"$bin_dir/.$name.partial" | cut -d' ' -f1)" >"$bin_dir/.$name.sum"
  mv -f "$bin_dir/.$name.partial" "$bin_dir/$name"
  log "[$i/$total] $name built in $((SECONDS - started))s"
done

if ! $main_ok; then
  {
    echo "pins $(stamp_digest)"
    (cd "$bin_dir" && for t in "${targets[@]}"; do sha256sum "${t%%|*}"; done)
  } >"$stamp.tmp"
  mv -f "$stamp.tmp" "$stamp"
fi
if $with_node; then
  {
    echo "pins $(node_digest)"
    (cd "$bin_dir" && for t in "${node_targets[@]}"; do sha256sum "${t%%|*}"; done)
  } >"$node_stamp.tmp"
  mv -f "$node_stamp.tmp" "$node_stamp"
fi
$with_prometheus && write_extra_stamp prometheus "$prometheus_stamp" "${prometheus_targets[@]}"
$with_jaeger && write_extra_stamp jaeger "$jaeger_stamp" "${jaeger_targets[@]}"
$with_kueue && write_extra_stamp kueue "$kueue_stamp" "${kueue_targets[@]}"
log "all binaries ready in $bin_dir ($((SECONDS - start_all))s)"
echo "$bin_dir"
