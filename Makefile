# Every target installs what it needs: a fresh clone on a fresh machine runs `make demo` or `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Debian's interpreter, not one under /root: runner pods run as a non-root user on the process
# node, and that user must be able to execute the virtualenv's python.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
CLUSTER := $(PY) -m localcluster

.PHONY: help venv operator-venv binaries cluster-up cluster-down test test-real-node test-cron test-minutes unit demo crds dashboards chart-check e2e-kind bench bench-scale bench-fairness faults faults-real hostile clean

help:
	@echo "make demo          bring up a local cluster (a real kubelet; FLUX_NODE=process: the process node),"
	@echo "                   run the operator, run and cancel an example"
	@echo "make test          unit and cluster tests (the local cluster is built on first use)"
	@echo "make test-real-node the real node's tests and a product subset on a real kubelet (.cluster-real)"
	@echo "make test-cron     the Schedule tests that wait through several cron minutes (not in make test)"
	@echo "make test-minutes  the tests that wait minutes at the product's defaults, on the real node (not in make test)"
	@echo "make cluster-up    start the local control plane and process node (.cluster/kubeconfig)"
	@echo "make cluster-down  stop everything cluster-up started"
	@echo "make e2e-kind      the demo scenario on kind (needs Docker)"
	@echo "make bench         the benchmark suite (bench/run.py): every figure against a same-run baseline"
	@echo "make bench-scale   only its KWOK part: 1,000/5,000 executions (requests/min, deadlines, RSS)"
	@echo "make bench-fairness only its fairness part (KWOK): a storm next door vs deadlines, cancels, starts"
	@echo "make operator-venv .venv-operator: the operator alone, as its image has it (the benchmark runs it)"
	@echo "make faults        the fault suite on a cluster of its own (tests/faults/RESULTS.md)"
	@echo "make faults-real   its faults where a real kubelet matters, on the real node (tests/faults/RESULTS-real.md)"
	@echo "make hostile       the hostile-tenant suite on a cluster of its own (tests/hostile/RESULTS.md)"

ROLE_PROJECTS := $(wildcard */pyproject.toml)

$(VENV)/.installed: requirements-dev.txt $(ROLE_PROJECTS)
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

# The operator alone (api + operator, editable, with their pinned dependencies), as its image has it:
# the benchmark runs its operators from here, so that RSS figures carry none of the dev tools (the
# dev venv has the `kubernetes` package for hack/ and the tests, and kopf imports it when present).
OPERATOR_VENV := .venv-operator
$(OPERATOR_VENV)/.installed: api/pyproject.toml operator/pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	@test -x $(OPERATOR_VENV)/bin/python || $(PYTHON) -m venv $(OPERATOR_VENV)
	$(OPERATOR_VENV)/bin/python -m pip install -q --upgrade pip==25.3
	$(OPERATOR_VENV)/bin/python -m pip install -q -e ./api -e ./operator
	@if $(OPERATOR_VENV)/bin/python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("kubernetes") is None)'; \
		then echo "$(OPERATOR_VENV) has the kubernetes package: the operator must not depend on it" >&2; exit 1; fi
	@touch $@

operator-venv: $(OPERATOR_VENV)/.installed

binaries:
	@hack/build-binaries.sh --with-prometheus --with-jaeger --with-kueue >/dev/null

cluster-up: venv binaries
	$(CLUSTER) up

cluster-down: venv
	$(CLUSTER) down

unit: venv
	$(PY) -m pytest -m unit

# Everything but the fault suite: the unit tests and the cluster tests on the process node, then the
# product's cancel, logs, chart and execution tests on the real node (test-real-node), where pods are
# containers run by a kubelet from our own images. Those files run only there.
REAL_PRODUCT_TESTS := tests/cluster/test_ways_to_cancel.py tests/cluster/test_logs.py tests/cluster/test_suspend.py tests/cluster/test_waits.py \
	tests/cluster/test_signals.py tests/cluster/test_retry.py \
	tests/cluster/test_helm_install.py tests/cluster/test_executions.py tests/cluster/test_progress.py

test: venv binaries
	$(PY) -m pytest --ignore=tests/faults --ignore=tests/hostile $(addprefix --ignore=,$(REAL_PRODUCT_TESTS)) -m 'not real_node_only and not cron_minutes' --durations=15
	$(MAKE) --no-print-directory test-real-node

# The Schedule tests that wait through cron minutes (Forbid, Replace, missed runs, history, the examples end
# to end, the plugin's unschedule, a workflow's own unschedule): about 11 minutes, so `make test` (and CI) leaves them to this target;
# the rest of tests/cluster/test_schedules.py runs in `make test`.
test-cron: venv binaries
	$(PY) -m pytest -p no:cacheprovider -m cron_minutes tests/cluster/test_schedules.py

# Tests that wait minutes at the product's defaults (a two-minute durable sleep at the default 60 s threshold);
# `make test` runs the same paths at the least threshold. On the real node, as their files are.
test-minutes: venv binaries
	@FLUX_CLUSTER_DIR=$(REAL_CLUSTER) $(CLUSTER) down >/dev/null # what an interrupted run left up
	FLUX_NODE=real FLUX_CLUSTER_DIR=$(REAL_CLUSTER) $(PY) -m pytest -p no:cacheprovider -m minutes $(REAL_NODE_TESTS)

# The real node (containerd, runc, a kubelet at the pinned version, our images) on a cluster of its own:
# its own tests and the product's cancel, logs, chart and execution tests on it, minus the tests about
# the process node itself. Then, with that cluster down (one real kubelet per machine), the host-clean
# test in a run of its own: it brings up and takes down clusters of its own.
REAL_CLUSTER ?= $(CURDIR)/.cluster-real
REAL_NODE_TESTS := tests/harness/test_realnode.py $(REAL_PRODUCT_TESTS)

test-real-node: venv binaries
	@FLUX_CLUSTER_DIR=$(REAL_CLUSTER) $(CLUSTER) down >/dev/null # what an interrupted run left up
	FLUX_NODE=real FLUX_CLUSTER_DIR=$(REAL_CLUSTER) $(PY) -m pytest -p no:cacheprovider \
		-m 'not process_node_only and not minutes' --durations=15 $(REAL_NODE_TESTS)
	FLUX_NODE=real $(PY) -m pytest -p no:cacheprovider tests/harness/test_host_clean.py

# TRACING=1: also Jaeger on loopback, the operator and runner tracing to it; prints the run's trace id.
demo: venv binaries
	TRACING=$(TRACING) hack/demo.sh

crds: venv
	$(PY) -m flux_api.crd --write

# The chart's Grafana dashboards (charts/flux-operator/dashboards/), from flux_operator/dashboards.py.
dashboards: venv
	$(PY) -m flux_operator.dashboards --write

# Both build kwok (hack/kwok/go.mod) into the binary cache on first use, for the KWOK node of the scale part.
# Every figure on the process node and KWOK, then the cancel-latency table and the start throughput on the
# real node against their floors (a cluster of its own: one real kubelet per machine), and the start
# throughput of 1,000 on KWOK.
# Ends with one table of every figure its three runs measured, and the ones that miss their target.
bench: venv operator-venv binaries
	@hack/build-binaries.sh --with-kwok >/dev/null
	@date -u +%Y%m%dT%H%M%SZ > .bench-since
	$(PY) -m bench.run
	FLUX_NODE=real FLUX_BENCH_DIR=$(CURDIR)/.cluster-bench-real $(PY) -m bench.run --parts cancel,starts,cascade --starts-n 40 --starts-rounds 20 --starts-jobs-hardened --starts-cpu --starts-requests
	$(PY) -m bench.run --parts starts --starts-kwok --starts-n 1000 --starts-rounds 3
	$(PY) -m bench.report --since $$(cat .bench-since)

bench-scale: venv operator-venv binaries
	@hack/build-binaries.sh --with-kwok >/dev/null
	$(PY) -m bench.run --scale-only

# Fairness between namespaces (bench/fairness.py, KWOK): FAIRNESS_BEFORE=<commit> also measures that
# commit's operator, interleaved, in the same conditions.
bench-fairness: venv operator-venv binaries
	@hack/build-binaries.sh --with-kwok >/dev/null
	$(PY) -m bench.run --parts fairness $(if $(FAIRNESS_BEFORE),--fairness-before $(FAIRNESS_BEFORE))

e2e-kind:
	hack/e2e-kind.sh

clean: cluster-down
	rm -rf .cluster $(VENV) $(OPERATOR_VENV)

# Fault injection (tests/faults): stops, pauses and kills parts of the control plane, so it runs on a
# cluster of its own; writes tests/faults/RESULTS.md. `make test` leaves tests/faults out.
FAULTS_CLUSTER ?= $(CURDIR)/.cluster-faults

faults: venv binaries
	FLUX_CLUSTER_DIR=$(FAULTS_CLUSTER) $(PY) -m pytest tests/faults -p no:cacheprovider -q --durations=20

# The faults where a real kubelet matters (marker `kubelet`: SIGTERM and graceful cancels, SIGKILL at the
# grace's end, eviction, node loss) on the real node, a cluster of its own (one real kubelet per machine);
# writes tests/faults/RESULTS-real.md. Not in .ci/run.
FAULTS_REAL_CLUSTER ?= $(CURDIR)/.cluster-faults-real

faults-real: venv binaries
	@FLUX_CLUSTER_DIR=$(FAULTS_REAL_CLUSTER) $(CLUSTER) down >/dev/null # what an interrupted run left up
	FLUX_NODE=real FLUX_CLUSTER_DIR=$(FAULTS_REAL_CLUSTER) $(PY) -m pytest tests/faults -p no:cacheprovider -q \
		-m kubelet


# The hostile-tenant suite (tests/hostile): attacks by a namespace user with only Execution rights, or by a
# runner with its own token. Some kill the operators they target, so it runs on a cluster of its own;
# writes tests/hostile/RESULTS.md.
HOSTILE_CLUSTER ?= $(CURDIR)/.cluster-hostile

hostile: venv binaries
	FLUX_CLUSTER_DIR=$(HOSTILE_CLUSTER) $(PY) -m pytest tests/hostile -p no:cacheprovider -q --durations=25
