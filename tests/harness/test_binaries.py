"""The binary cache: reused when whole, rebuilt where damaged, never used half-made."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fluxtest import REPO

pytestmark = pytest.mark.cluster

BUILD = REPO / "hack" / "build-binaries.sh"


def build(cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BUILD)], env={**os.environ, "FLUX_CACHE_DIR": str(cache)}, capture_output=True,
                          text=True, timeout=900)


def link_binaries(source: str, target: str) -> None:
    if not os.path.basename(source).startswith("."):
        try:
            os.link(source, target)
            return
        except OSError as err:
            if err.errno != errno.EXDEV:  # another file system than the cache's: a copy it is
                raise
    shutil.copy2(source, target)


def test_a_damaged_or_half_built_binary_is_rebuilt_and_the_rest_reused(cluster, tmp_path):
    """A binary cut short, and a build killed mid-way (only a .partial file, never taken for a binary), are
    both rebuilt by the next run, in one build; everything else is reused. The two smallest of the control
    plane's binaries stand for all: what is checked is the cache's bookkeeping, not the Go toolchain."""
    version = cluster.bin.parent.name
    cache = tmp_path / "cache"
    # The binaries as hard links, not copies (a gigabyte): the build replaces a binary by renaming over it, so
    # the shared cache is never written through them. Its stamps and sums, which it writes in place, are copies;
    # so is the one binary damaged here.
    shutil.copytree(cluster.bin.parent, cache / version, symlinks=True, copy_function=link_binaries)
    bin_dir = cache / version / "bin"
    damaged = bin_dir / "kubeconform"
    damaged.unlink()
    shutil.copy2(cluster.bin / "kubeconform", damaged)
    with open(damaged, "ab") as f:
        f.write(b"half a write")
    (bin_dir / "etcd").unlink()
    (bin_dir / ".etcd.partial").write_bytes(b"\x7fELF truncated")

    result = build(cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(bin_dir)
    assert "building kubeconform" in result.stderr and "building etcd" in result.stderr
    assert "kube-apiserver: cached" in result.stderr and "helm: cached" in result.stderr
    assert not damaged.read_bytes().endswith(b"half a write")
    assert not (bin_dir / ".etcd.partial").exists()
    for name, flag in (("kubeconform", "-v"), ("etcd", "--version")):
        rebuilt = subprocess.run([str(bin_dir / name), flag], capture_output=True, text=True)
        original = subprocess.run([str(cluster.bin / name), flag], capture_output=True, text=True)
        assert rebuilt.returncode == 0 and rebuilt.stdout == original.stdout, (name, rebuilt.stdout, rebuilt.stderr)

    again = build(cache)
    assert again.returncode == 0 and "building" not in again.stderr, "a whole cache costs no build"
