// Pins the prometheus-operator CRDs (ServiceMonitor, PodMonitor, PrometheusRule) that the chart's monitoring
// objects are validated against offline (tests/cluster/test_chart.py); fetched from the Go module proxy.
module flux.dev/hack/monitoring-crds

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
