"""Flux: Kubernetes-native workflow executions you can cancel: the operator (the plugin is flux_cli)."""
