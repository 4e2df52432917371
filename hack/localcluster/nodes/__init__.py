"""The node kinds of the local cluster (process, real, KWOK); `nodes.choice` picks one from FLUX_NODE."""
