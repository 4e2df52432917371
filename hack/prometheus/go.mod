// Pins Prometheus (promtool tests the chart's alert rules; the server runs the alert test on the local
// cluster), built by hack/build-binaries.sh --with-prometheus without service discovery (remove_all_sd).
module flux.dev/hack/prometheus

go 1.26.7

require github.com/prometheus/prometheus v0.316.0 // indirect
