#!/usr/bin/env bash
# Installs the Debian packages the real node needs (hack/build-binaries.sh --with-node,
# hack/build-images.sh, FLUX_NODE=real). Idempotent: apt-get runs only when one is missing.
#   libseccomp-dev pkg-config gcc   runc is built with cgo and the seccomp tag
#   containernetworking-plugins     the loopback CNI plugin containerd needs even for hostNetwork pods
#   mmdebstrap umoci buildah skopeo the local base image, the pause image and our Dockerfiles
#   iptables                        the kubelet creates its canary/firewall chains with it
set -euo pipefail

packages=(libseccomp-dev pkg-config gcc libc6-dev containernetworking-plugins mmdebstrap umoci buildah skopeo iptables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "[node-deps] installing: ${missing[*]}" >&2
if [ "$(id -u)" != 0 ]; then echo "[node-deps] root is needed to install packages" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
