"""Flux: Kubernetes-native workflow executions you can cancel (operator and kubectl plugin)."""
