// Pins Kueue (the queueing tests' admission controller for runner pods: its plain-Pod integration), built by
// hack/build-binaries.sh --with-kueue; its CRDs are read from the same module (localcluster.layout.kueue_crds).
module flux.dev/hack/kueue

go 1.26.0

require sigs.k8s.io/kueue v0.17.0 // indirect
