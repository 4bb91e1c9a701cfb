# lagscale Makefile. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN         := $(CURDIR)/bin
K8S_VERSION := 1.37.2
K8S_BIN     := $(BIN)/k8s/$(K8S_VERSION)
CONTROL_PLANE := $(K8S_BIN)/etcd $(K8S_BIN)/kube-apiserver $(K8S_BIN)/kube-controller-manager $(K8S_BIN)/kube-scheduler
CONTROLLER_GEN := go tool controller-gen
GO_TEST_FLAGS ?=

# Tests find etcd and kube-apiserver here.
export KUBEBUILDER_ASSETS := $(K8S_BIN)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate the CRDs (config/crd/bases) and RBAC (config/rbac) from the Go markers.
	$(CONTROLLER_GEN) rbac:roleName=lagscale-manager crd:generateEmbeddedObjectMeta=true,allowDangerousTypes=true \
		paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	go run ./hack/crdtrim config/crd/bases/lagscale.dev_eventconsumers.yaml

.PHONY: chart-sync
chart-sync: ## Copy the generated CRDs and RBAC into the Helm chart.
	cp config/crd/bases/*.yaml charts/lagscale/files/crds/
	cp config/rbac/role.yaml charts/lagscale/files/rbac/role.yaml

.PHONY: generate
generate: ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: manifests generate chart-sync ## Fail when generated files are stale (regenerates, then compares with git).
	@if [ -n "$$(git status --porcelain -- config api charts)" ]; then \
		git status --porcelain -- config api charts; git --no-pager diff --stat -- config api charts; \
		echo "generated files are stale: run 'make manifests generate' and commit the result"; exit 1; fi
	@echo "generated files are up to date"

.PHONY: test-env
test-env: $(CONTROL_PLANE) ## Build etcd, kube-apiserver, kube-controller-manager and kube-scheduler into bin/k8s (first time about 8 minutes).

$(K8S_BIN)/etcd: hack/tools/go.mod hack/tools/etcd/main.go
	@mkdir -p $(K8S_BIN)
	@echo ">> building etcd (go.etcd.io/etcd/server/v3) into $(K8S_BIN)"
	cd hack/tools && go build -o $@ ./etcd

# The version is stamped in as a release build would be, so that /version,
# kubectl version and helm's kubeVersion checks see v$(K8S_VERSION).
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=v$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(K8S_VERSION))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION))) \
	-X k8s.io/component-base/version.gitTreeState=clean

$(K8S_BIN)/kube-%: hack/tools/go.mod $(K8S_BIN)/.ldflags-v2
	@mkdir -p $(K8S_BIN)
	@echo ">> building kube-$* $(K8S_VERSION) from k8s.io/kubernetes into $(K8S_BIN) (the first build takes several minutes)"
	@start=$$(date +%s); cd hack/tools && go build -ldflags "$(K8S_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-$* && echo ">> kube-$* built in $$(( $$(date +%s) - start ))s"

# A stamp that changes when the build flags above change, so binaries built
# without them are rebuilt once.
$(K8S_BIN)/.ldflags-v2:
	@mkdir -p $(K8S_BIN)
	@touch $@

.PHONY: helm
helm: $(BIN)/helm ## Build helm (pinned in hack/tools/helm) into bin/.

$(BIN)/helm: hack/tools/helm/go.mod
	@echo ">> building helm from hack/tools/helm into $(BIN)"
	cd hack/tools/helm && go build -o $@ helm.sh/helm/v3/cmd/helm

.PHONY: test
test: test-env helm verify vet ## Run every test against the real control plane and Kafka (kfake).
	go test $(GO_TEST_FLAGS) -count=1 ./...

.PHONY: test-e2e
test-e2e: sandbox-tools ## Run the end-to-end tests of the sandbox (brings it up in a temporary directory).
	go build -o $(BIN)/lagscale ./cmd/lagscale
	go test -tags e2e -count=1 -timeout 30m -v ./test/e2e/...

##@ Sandbox

KWOK_STAGES := node/fast/node-initialize node/heartbeat/node-heartbeat pod/fast/pod-ready pod/fast/pod-complete

.PHONY: sandbox-tools
sandbox-tools: test-env $(BIN)/kwok $(BIN)/kwok-stages/.copied $(BIN)/example-handler ## Build what `lagscale sandbox up` runs: the control plane, kwok and its stages, the example handler.

$(BIN)/kwok: hack/tools/kwok/go.mod
	@echo ">> building kwok (sigs.k8s.io/kwok, pinned in hack/tools/kwok) into $(BIN) (about 3 minutes the first time)"
	cd hack/tools/kwok && go build -o $@ sigs.k8s.io/kwok/cmd/kwok

$(BIN)/kwok-stages/.copied: hack/tools/kwok/go.mod
	@mkdir -p $(BIN)/kwok-stages
	@dir=$$(cd hack/tools/kwok && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok) && for s in $(KWOK_STAGES); do \
		install -m 644 $$dir/kustomize/stage/$$s.yaml $(BIN)/kwok-stages/$$(basename $$s).yaml; done
	@touch $@
	@echo ">> copied kwok's stages ($(KWOK_STAGES)) into $(BIN)/kwok-stages"

.PHONY: $(BIN)/example-handler
$(BIN)/example-handler:
	go build -o $@ ./examples/handler

.PHONY: demo
demo: sandbox-tools ## Run the sandbox with the demo: a burst of load and lagscale scaling the handler (about 6 minutes).
	go build -o $(BIN)/lagscale ./cmd/lagscale
	$(BIN)/lagscale sandbox up --demo $(DEMO_FLAGS)

.PHONY: bench
bench: ## Run the benchmarks: the lag engine (1,000 groups), the handler SDK against a bare franz-go loop, the autoscaler scenarios.
	go test -run '^$$' -bench BenchmarkPollCycle -benchtime 50x -benchmem ./internal/lag/
	go test -c -o bin/handler.test ./pkg/handler
	go run ./hack/benchratio -test bin/handler.test -records 500000 -count 11
	$(MAKE) bench-autoscale
	$(MAKE) bench-operator

.PHONY: bench-operator
bench-operator: build ## Operator at scale on the real API server: status writes/s, API and Kafka requests per cycle, queue latency, RSS (BENCH_CONSUMERS=1000).
	go run ./hack/opbench -manager $(BIN)/manager -consumers $${BENCH_CONSUMERS:-1000} $(BENCH_FLAGS)

.PHONY: bench-autoscale
bench-autoscale: ## Compare lagscale, KEDA+HPA, tuned KEDA and the oracle on every simulator scenario.
	go run ./cmd/lagscale sim --scenario all

##@ Build

.PHONY: build
build: ## Build the operator and the CLI into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/manager ./cmd/manager
	go build -o $(BIN)/lagscale ./cmd/lagscale

.PHONY: run
run: manifests ## Run the operator against the current kubeconfig (install the CRDs first: kubectl apply --server-side -f config/crd/bases).
	go run ./cmd/manager --leader-elect=false --log-format text --metrics-bind-address :8080 --health-probe-bind-address :8081

.PHONY: docker-build
docker-build: ## Build the operator image (needs a Docker engine).
	docker build -t $${IMG:-lagscale/manager:dev} .
