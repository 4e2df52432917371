#!/usr/bin/env bash
# Builds the real node's images without a registry or Docker, into ~/.cache/flux-operator/images:
#   localhost/pause:flux            the sandbox image: hack/images/pause.c, static, in a scratch image
#   localhost/flux-base:bookworm    a Debian base (mmdebstrap) with python3, standing in for python:3.11-slim
#   localhost/flux-operator:dev     operator/Dockerfile  (buildah, PYTHON_IMAGE=the local base)
#   localhost/flux-runner:dev       runner/Dockerfile    (buildah, PYTHON_IMAGE=the local base)
#   localhost/flux-examples:dev     examples/Dockerfile  (buildah, RUNNER_IMAGE=the runner above)
# Each archive is keyed by a digest of its inputs (and of the images it is built on), so a rerun
# with nothing changed costs only the hashing. Prints one `ctr -n k8s.io images import`-able archive
# per line on stdout; progress goes to stderr. Needs root, hack/node-deps.sh and
# hack/build-binaries.sh --with-node (buildah runs RUN steps with our runc).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cache=${FLUX_CACHE_DIR:-$HOME/.cache/flux-operator}/images
mkdir -p "$cache"
log() { printf '[build-images] %s\n' "$*" >&2; }

"$here/node-deps.sh"
# localcluster passes the bin dir it has just checked; on its own the script checks (or builds) it.
bin_dir=${FLUX_NODE_BIN_DIR:-$("$here/build-binaries.sh" --with-node)}

# Debian's python3 has no `python` command and the essential variant no groupadd: the two extra
# packages let the Dockerfiles' public-base steps run unchanged on this base.
base_packages=python3,python3-venv,python-is-python3,passwd,ca-certificates
base_suite=bookworm
base_mirror=http://deb.debian.org/debian

# buildah keeps its layers in the cache, not in /var/lib/containers.
storage=(--root "$cache/storage" --runroot "$cache/storage-run" --storage-driver overlay)
bh() { buildah "${storage[@]}" "$@"; }
# skopeo and buildah also create these whatever they are told (a blob-info cache, a CNI config
# dir); the ones this run creates are removed when it ends, so a build leaves the host as it was.
residue=()
for d in /var/lib/containers /etc/cni; do [ -e "$d" ] || residue+=("$d"); done
cleanup() { [ ${#residue[@]} -eq 0 ] || rm -rf "${residue[@]}"; }
trap cleanup EXIT

digest() { sha256sum | cut -c1-16; }
# Bump when a recipe below changes in a way its inputs do not show (keys hold no script digest, so
# editing a comment rebuilds nothing).
recipe=1
# An archive replaced by a newer one of the same image is only dead weight.
prune() { find "$cache" -maxdepth 1 -name "$1-*.tar" ! -name "$(basename "$2")" -delete; }

# A scratch OCI layout holding one image made from a root filesystem directory, then a docker
# archive of it (what buildah pulls and ctr imports). $1 = rootfs dir, $2 = ref, $3 = archive, $4.. = umoci config args
oci_archive() {
  local rootfs=$1 ref=$2 out=$3 work
  shift 3
  work=$(mktemp -d "$cache/.work.XXXXXX")
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:img"
  umoci unpack --image "$work/oci:img" "$work/bundle" >/dev/null
  cp -a "$rootfs/." "$work/bundle/rootfs/"
  umoci repack --image "$work/oci:img" "$work/bundle"
  umoci config --image "$work/oci:img" "$@"
  skopeo copy --quiet "oci:$work/oci:img" "docker-archive:$out.partial:$ref"
  mv -f "$out.partial" "$out"
  prune "$(basename "${out%-*}")" "$out"
  rm -rf "$work"
}

# --- pause -------------------------------------------------------------------------------------
pause_key=$( { echo "$recipe"; cat "$here/images/pause.c"; gcc --version | head -n1; } | digest)
pause_tar="$cache/pause-$pause_key.tar"
if [ ! -f "$pause_tar" ]; then
  log "building localhost/pause:flux"
  tmp=$(mktemp -d "$cache/.pause.XXXXXX")
  mkdir -p "$tmp/rootfs"
  gcc -static -Os -o "$tmp/rootfs/pause" "$here/images/pause.c"
  strip "$tmp/rootfs/pause"
  oci_archive "$tmp/rootfs" localhost/pause:flux "$pause_tar" \
    --config.entrypoint /pause --config.user 65535:65535
  rm -rf "$tmp"
fi

# --- the Debian base ---------------------------------------------------------------------------
base_key=$(echo "$recipe $base_suite $base_mirror $base_packages" | digest)
base_tar="$cache/base-$base_key.tar"
if [ ! -f "$base_tar" ]; then
  log "building localhost/flux-base:$base_suite with mmdebstrap (about 30 s)"
  tmp=$(mktemp -d "$cache/.base.XXXXXX")
  started=$SECONDS
  # Docs and man pages only cost size in an image.
  mmdebstrap --quiet --variant=essential --include="$base_packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$base_suite" "$tmp/rootfs" "deb $base_mirror $base_suite main" >&2
  rm -rf "$tmp/rootfs/var/cache/apt/"* "$tmp/rootfs/var/lib/apt/lists/"*
  oci_archive "$tmp/rootfs" "localhost/flux-base:$base_suite" "$base_tar" \
    --config.cmd python3 --config.env LANG=C.UTF-8
  rm -rf "$tmp"
  log "base built in $((SECONDS - started))s"
fi

# --- our Dockerfiles ---------------------------------------------------------------------------
# The build context's files as git sees them (tracked and untracked, minus .gitignore).
tree_digest() { (cd "$repo" && git ls-files -co --exclude-standard -- "$@" | sort | xargs -d '\n' sha256sum | digest); }

ensure_in_storage() {  # $1 = archive, $2 = ref: buildah builds FROM it with --pull-never
  bh inspect --type image "$2" >/dev/null 2>&1 && [ "$(cat "$cache/.loaded-${2//[\/:]/_}" 2>/dev/null)" = "$1" ] && return
  bh pull --quiet "docker-archive:$1" >/dev/null
  echo "$1" >"$cache/.loaded-${2//[\/:]/_}"
}

# pip in a build container verifies TLS with its own bundle; hand it the host's CA bundle (some
# networks intercept TLS) through a pip.conf mounted for the RUN steps only.
pip_mounts=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  printf '[global]\ncert = /etc/flux-host-ca.crt\n' >"$cache/pip.conf"
  pip_mounts=(--volume "$cache/pip.conf:/etc/pip.conf:ro"
              --volume /etc/ssl/certs/ca-certificates.crt:/etc/flux-host-ca.crt:ro)
fi

build() {  # $1 = name, $2 = Dockerfile, $3 = key, $4 = build arg; prints nothing, sets $built
  local name=$1 dockerfile=$2 key=$3 arg=$4 out
  out="$cache/$name-$key.tar"
  built=$out
  [ -f "$out" ] && return
  log "building localhost/$name:dev from $dockerfile"
  local started=$SECONDS
  # --network host only so pip can reach PyPI: buildah's default would create a bridge, iptables
  # chains and turn on ip_forward. Our runc runs the RUN steps (Debian's buildah recommends its own);
  # it keeps its state in the cache, not /run/runc, and warns, harmlessly, that it cannot raise
  # ambient capabilities here.
  (cd "$repo" && bh bud --quiet --pull-never --network host --runtime "$bin_dir/runc" \
      --runtime-flag "root=$cache/runc-state" \
      --layers=false "${pip_mounts[@]}" --build-arg "$arg" -f "$dockerfile" -t "localhost/$name:dev" . \
      2> >(grep -v "can't raise ambient capability" >&2) >/dev/null)
  bh push --quiet "localhost/$name:dev" "docker-archive:$out.partial:localhost/$name:dev"
  mv -f "$out.partial" "$out"
  prune "$name" "$out"
  log "localhost/$name:dev built in $((SECONDS - started))s"
}

ensure_in_storage "$base_tar" "localhost/flux-base:$base_suite"
base_ref="PYTHON_IMAGE=localhost/flux-base:$base_suite"
build flux-operator operator/Dockerfile "$( { echo "$base_key"; tree_digest operator/Dockerfile api operator; } | digest)" "$base_ref"
operator_tar=$built
build flux-runner runner/Dockerfile "$( { echo "$base_key"; tree_digest runner/Dockerfile api runner; } | digest)" "$base_ref"
runner_tar=$built
ensure_in_storage "$runner_tar" localhost/flux-runner:dev
build flux-examples examples/Dockerfile "$( { basename "$runner_tar"; tree_digest examples; } | digest)" \
  RUNNER_IMAGE=localhost/flux-runner:dev
examples_tar=$built

printf '%s\n' "$pause_tar" "$base_tar" "$operator_tar" "$runner_tar" "$examples_tar"
