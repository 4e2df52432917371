"""Jaeger (v2: an OpenTelemetry collector with Jaeger's storage and query API) for the tracing test and
`make demo TRACING=1`: memory storage, OTLP/HTTP and the query API on loopback only.

    python -m localcluster.jaeger OTLP_PORT QUERY_PORT GRPC_PORT   prints its configuration (YAML)
"""

from __future__ import annotations

import sys

import yaml


def jaeger_config(otlp: int, query: int, grpc: int) -> dict:
    return {
        "service": {"extensions": ["jaeger_storage", "jaeger_query"],
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                             "exporters": ["jaeger_storage_exporter"]}},
                    "telemetry": {"metrics": {"level": "none"}}},  # no metrics listener at all
        "extensions": {"jaeger_query": {"storage": {"traces": "memstore"}, "http": {"endpoint": f"127.0.0.1:{query}"},
                                        "grpc": {"endpoint": f"127.0.0.1:{grpc}"}},
                       "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 10000}}}}},
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp}"}}}},
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }


if __name__ == "__main__":
    otlp_port, query_port, grpc_port = map(int, sys.argv[1:4])
    print(yaml.safe_dump(jaeger_config(otlp_port, query_port, grpc_port)), end="")
