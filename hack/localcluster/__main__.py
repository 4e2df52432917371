"""`python -m localcluster up|down|status` (what `make cluster-up` and `make cluster-down` run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localcluster.layout import Layout, cluster_dir


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:
        from localcluster.node import main as node_main

        return node_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m localcluster")
    parser.add_argument("command", choices=["up", "down", "status", "supervise"])
    parser.add_argument("--dir", type=Path, default=None, help="cluster directory (default .cluster)")
    args = parser.parse_args(argv)
    root = (args.dir or cluster_dir()).resolve()
    from localcluster import cluster

    if args.command == "up":
        try:
            cluster.up(root)
        except cluster.ClusterError as err:
            print(f"cluster-up failed: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "down":
        cluster.down(root)
        return 0
    if args.command == "supervise":
        return cluster.supervise(root)
    layout = Layout.load(root)
    up = cluster.is_up(layout)
    print(f"up: KUBECONFIG={layout.kubeconfig}" if up else "down")
    return 0 if up else 1


if __name__ == "__main__":
    sys.exit(main())
