// Pins Jaeger (the tracing test's collector and query API, all in one process), built by
// hack/build-binaries.sh --with-jaeger.
module flux.dev/hack/jaeger

go 1.26.0

require github.com/jaegertracing/jaeger v1.75.0 // indirect
