"""A real Kubernetes control plane on 127.0.0.1, plus a process node: test and demo infrastructure only."""
