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
		paths=./api/... paths=./controllers/... paths=./internal/operator/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	go run ./hack/crdtrim config/crd/bases/lagscale.dev_eventconsumers.yaml

.PHONY: chart-sync
chart-sync: ## Copy the generated CRDs and RBAC into the Helm chart.
	cp config/crd/bases/*.yaml charts/lagscale/files/crds/
	cp config/rbac/role.yaml charts/lagscale/files/rbac/role.yaml

.PHONY: generate
generate: ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

# crd-ref-docs is built from hack/tools/apidocs, a module of its own, like
# golangci-lint.
CRD_REF_DOCS := $(BIN)/crd-ref-docs

.PHONY: api-docs
api-docs: $(CRD_REF_DOCS) ## Generate the API reference (docs/api/v1alpha1.md) from the Go types in api/.
	$(CRD_REF_DOCS) --source-path=./api --config=hack/tools/apidocs/config.yaml --renderer=markdown --output-path=docs/api/v1alpha1.md --log-level=ERROR

$(CRD_REF_DOCS): hack/tools/apidocs/go.mod hack/tools/apidocs/go.sum
	@echo ">> building crd-ref-docs (pinned in hack/tools/apidocs) into $(BIN) (under a minute the first time)"
	cd hack/tools/apidocs && go build -o $@ github.com/elastic/crd-ref-docs

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

# golangci-lint is built from hack/tools/lint, a module of its own, so that
# its dependencies cannot move the operator's or hack/tools'; eslint is
# installed from hack/tools/eslint's lockfile for the same reason.
GOLANGCI_LINT := $(BIN)/golangci-lint
ESLINT        := hack/tools/eslint/node_modules/.bin/eslint

.PHONY: lint
lint: $(GOLANGCI_LINT) $(ESLINT) ## Run golangci-lint (.golangci.yml) on the Go code and eslint (sdk/node/eslint.config.js) on the Node.js SDK; both run, either fails it.
	@rc=0; \
	echo ">> golangci-lint run ./..."; $(GOLANGCI_LINT) run ./... || rc=1; \
	echo ">> eslint sdk/node"; (cd sdk/node && $(CURDIR)/$(ESLINT) .) || rc=1; \
	exit $$rc

$(GOLANGCI_LINT): hack/tools/lint/go.mod hack/tools/lint/go.sum
	@echo ">> building golangci-lint (pinned in hack/tools/lint) into $(BIN) (about 2 minutes the first time)"
	cd hack/tools/lint && go build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

$(ESLINT): hack/tools/eslint/package-lock.json
	@echo ">> installing eslint (pinned in hack/tools/eslint) (under a minute)"
	cd hack/tools/eslint && npm ci --no-audit --no-fund
	@touch $@

.PHONY: verify
verify: manifests generate chart-sync api-docs ## Fail when generated files are stale (regenerates, then compares with git).
	@if [ -n "$$(git status --porcelain -- config api charts docs/api)" ]; then \
		git status --porcelain -- config api charts docs/api; git --no-pager diff --stat -- config api charts docs/api; \
		echo "generated files are stale: run 'make manifests generate chart-sync api-docs' and commit the result"; exit 1; fi
	@echo "generated files are up to date"

.PHONY: test-env
test-env: $(CONTROL_PLANE) ## Build etcd, kube-apiserver, kube-controller-manager and kube-scheduler into bin/k8s (first time about 8 minutes).

$(K8S_BIN)/etcd: hack/tools/go.mod hack/tools/etcd/main.go
	@mkdir -p $(K8S_BIN)
	@echo ">> building etcd (go.etcd.io/etcd/server/v3) into $(K8S_BIN) (about 1 minute the first time)"
	@start=$$(date +%s); cd hack/tools && go build -o $@ ./etcd && echo ">> etcd built in $$(( $$(date +%s) - start ))s"

# The version is stamped in as a release build would be, so that /version,
# kubectl version and helm's kubeVersion checks see v$(K8S_VERSION).
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=v$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(K8S_VERSION))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION))) \
	-X k8s.io/component-base/version.gitTreeState=clean

# What a first build of each takes on two cores with an empty Go cache, so
# that a newcomer sees progress rather than a silent terminal. Later builds
# share most packages and take far less.
EXPECT_kube-apiserver          := about 6 minutes
EXPECT_kube-controller-manager := about 2 minutes
EXPECT_kube-scheduler          := about 1 minute

$(K8S_BIN)/kube-%: hack/tools/go.mod $(K8S_BIN)/.ldflags-v2
	@mkdir -p $(K8S_BIN)
	@echo ">> building kube-$* $(K8S_VERSION) from k8s.io/kubernetes into $(K8S_BIN) ($(EXPECT_kube-$*) the first time)"
	@start=$$(date +%s); cd hack/tools && go build -ldflags "$(K8S_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-$* && echo ">> kube-$* built in $$(( $$(date +%s) - start ))s"

# A stamp that changes when the build flags above change, so binaries built
# without them are rebuilt once.
$(K8S_BIN)/.ldflags-v2:
	@mkdir -p $(K8S_BIN)
	@touch $@

.PHONY: helm
helm: $(BIN)/helm ## Build helm (pinned in hack/tools/helm) into bin/.

$(BIN)/helm: hack/tools/helm/go.mod
	@echo ">> building helm from hack/tools/helm into $(BIN) (about 1 minute the first time)"
	@start=$$(date +%s); cd hack/tools/helm && go build -o $@ helm.sh/helm/v3/cmd/helm && echo ">> helm built in $$(( $$(date +%s) - start ))s"

.PHONY: test
test: test-prereqs test-env helm verify vet ## Run every test against the real control plane and Kafka (kfake); installs runc first when it is missing and you are root.
	go test -timeout 30m $(GO_TEST_FLAGS) -count=1 ./...
	cd hack/image && go vet ./... && go test $(GO_TEST_FLAGS) -count=1 ./...

# What `make test` needs that it cannot build itself, checked before anything
# is built: runc, with which test/image runs the images. As root it is
# installed through `make oci-runtime`; otherwise make test stops at once
# with the command to run rather than failing after the whole suite.
.PHONY: test-prereqs
test-prereqs:
	@if ! command -v runc >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo ">> runc is missing: installing it from Debian's packages (make oci-runtime, under a minute)"; \
			$(MAKE) --no-print-directory oci-runtime; \
		else \
			echo "make test: runc is not installed, and test/image runs the images with it. Install it with:"; \
			echo "    make oci-runtime"; \
			echo "(it runs apt-get through sudo), then run make test again."; \
			exit 1; \
		fi; \
	fi

.PHONY: test-e2e
test-e2e: sandbox-tools ## Run the end-to-end tests of the sandbox (brings it up in a temporary directory).
	go test -tags e2e -count=1 -timeout 30m -v ./test/e2e/...

##@ Apache Kafka

# Apache Kafka versions the compatibility suite runs against: the newest 4.x
# that resolves from Maven Central, and the newest 3.9.x for classic-only
# clusters. internal/testkit's KafkaVersion and KafkaClassicVersion name the
# same two.
KAFKA_VERSIONS ?= 4.4.0 3.9.1
KAFKA_BIN      := $(BIN)/kafka
KAFKA_STAMPS   := $(foreach v,$(KAFKA_VERSIONS),$(KAFKA_BIN)/$(v)/libs/.resolved)

.PHONY: kafka
kafka: $(KAFKA_STAMPS) ## Resolve the pinned Apache Kafka brokers (hack/kafka/pom.xml) with Maven into bin/kafka/<version>/libs (first time about 1 minute).

$(KAFKA_BIN)/%/libs/.resolved: hack/kafka/pom.xml
	@rm -rf $(KAFKA_BIN)/$*/libs && mkdir -p $(KAFKA_BIN)/$*/libs
	@echo ">> resolving org.apache.kafka:kafka_2.13:$* and its runtime dependencies from Maven Central into $(KAFKA_BIN)/$*/libs"
	@start=$$(date +%s); \
	if ! mvn -B -q -f hack/kafka/pom.xml -Dkafka.version=$* dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(KAFKA_BIN)/$*/libs > $(KAFKA_BIN)/$*/mvn.log 2>&1; then \
		cat $(KAFKA_BIN)/$*/mvn.log; \
		echo "make kafka: could not resolve org.apache.kafka:kafka_2.13:$* (or one of its dependencies, named above) from Maven Central"; \
		exit 1; fi; \
	touch $@; echo ">> kafka $* resolved in $$(( $$(date +%s) - start ))s ($$(ls $(KAFKA_BIN)/$*/libs | wc -l) jars)"

.PHONY: java-handler
java-handler: ## Build examples/java-handler (plain kafka-clients) with Maven into examples/java-handler/target.
	mvn -B -q -f examples/java-handler/pom.xml package

.PHONY: java-streams-handler
java-streams-handler: ## Build examples/java-streams-handler (Kafka Streams on group.protocol=streams) with Maven into examples/java-streams-handler/target.
	mvn -B -q -f examples/java-streams-handler/pom.xml package

.PHONY: test-kafka
test-kafka: kafka java-handler java-streams-handler sandbox-tools ## Run the compatibility suite against Apache Kafka (test/kafka): the lag engine, the operator, the Go and Node.js SDKs, the Java handlers (kafka-clients, Kafka Streams) and the sandbox.
	go test -tags kafka -count=1 -p 1 -timeout 40m -v ./test/kafka/...

##@ Sandbox

KWOK_STAGES := node/fast/node-initialize node/heartbeat/node-heartbeat pod/fast/pod-ready pod/fast/pod-complete

.PHONY: sandbox-tools
sandbox-tools: demo-tools node-example ## Build what `lagscale sandbox up` runs: the control plane, kwok and its stages, the example handlers (Go, Node.js).

# The demo runs only the Go example handler, so it does not wait for the
# Node.js example's npm ci (about 4 minutes when librdkafka is built from
# source); the tests that run that example build it through sandbox-tools.
.PHONY: demo-tools
demo-tools: test-env $(BIN)/kwok $(BIN)/kwok-stages/.copied $(BIN)/example-handler $(BIN)/lagscale

# hack/tools/kwok requires the same version of every module it shares with
# hack/tools (k8s.io/* v0.37.2 and their dependencies), so that the packages
# compiled for the control plane, which demo-tools builds first, serve kwok
# from the build cache. Keep them equal when bumping either.
$(BIN)/kwok: hack/tools/kwok/go.mod
	@echo ">> building kwok (sigs.k8s.io/kwok, pinned in hack/tools/kwok) into $(BIN) (about 1 minute after the control plane, 3 on its own)"
	@start=$$(date +%s); cd hack/tools/kwok && go build -o $@ sigs.k8s.io/kwok/cmd/kwok && echo ">> kwok built in $$(( $$(date +%s) - start ))s"

$(BIN)/kwok-stages/.copied: hack/tools/kwok/go.mod
	@mkdir -p $(BIN)/kwok-stages
	@dir=$$(cd hack/tools/kwok && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok) && for s in $(KWOK_STAGES); do \
		install -m 644 $$dir/kustomize/stage/$$s.yaml $(BIN)/kwok-stages/$$(basename $$s).yaml; done
	@touch $@
	@echo ">> copied kwok's stages ($(KWOK_STAGES)) into $(BIN)/kwok-stages"

# Always rebuilt (go build is quick when nothing changed), so that the
# sandbox never runs a stale handler or CLI.
.PHONY: $(BIN)/example-handler $(BIN)/lagscale
$(BIN)/example-handler:
	@echo ">> building the Go example handler (examples/handler) into $(BIN) (under a minute)"
	go build -o $@ ./examples/handler

$(BIN)/lagscale:
	@echo ">> building the lagscale CLI (cmd/lagscale) into $(BIN) (about 1 minute the first time)"
	go build -o $@ ./cmd/lagscale

# KAFKA=apache runs the demo on Apache Kafka (the jars of `make kafka`)
# instead of the in-process kfake.
KAFKA ?= kfake

# GROUP_TYPE=streams (with KAFKA=apache) runs the demo's Kafka Streams
# phase: examples/java-streams-handler on a streams group.
GROUP_TYPE ?=

.PHONY: demo
demo: demo-tools $(if $(filter apache,$(KAFKA)),kafka) $(if $(filter streams,$(GROUP_TYPE)),java-streams-handler) ## Run the sandbox with the demo: a burst of load and lagscale scaling the handler (about 6 minutes once built); KAFKA=apache on Apache Kafka; KAFKA=apache GROUP_TYPE=streams scales the Kafka Streams example.
	$(BIN)/lagscale sandbox up --demo --kafka $(KAFKA) $(if $(GROUP_TYPE),--group-type $(GROUP_TYPE)) $(DEMO_FLAGS)

.PHONY: bench
bench: ## Run the benchmarks: the lag engine (1,000 groups), one autoscaler plan, the Go and Node.js handler SDKs against bare loops on their clients, the autoscaler scenarios.
	go test -run '^$$' -bench BenchmarkPollCycle -benchtime 50x -benchmem ./internal/lag/
	go test -run '^$$' -bench BenchmarkPlan -benchmem ./internal/autoscale/
	go test -c -o bin/handler.test ./pkg/handler
	go run ./hack/benchratio -test bin/handler.test -records 500000 -count 11
	$(MAKE) bench-node
	$(MAKE) bench-autoscale
	$(MAKE) bench-operator

.PHONY: bench-operator
bench-operator: build ## Operator at scale (real API server, 3 kfake brokers, 10 groups a topic, 20 probes): sync time, status writes/s, API and Kafka requests/cycle, decision and queue latency, RSS (BENCH_CONSUMERS=1000; BENCH_FLAGS=-replicas=3 runs it sharded).
	go run ./hack/opbench -manager $(BIN)/manager -consumers $${BENCH_CONSUMERS:-1000} $(BENCH_FLAGS)

# npm ci in examples/node-handler when its lockfile changed; its postinstall
# installs sdk/node's dependencies (scripts/install-deps.js).
.PHONY: node-example
node-example: ## Install the Node.js example handler's npm dependencies (and the SDK's) for the sandbox.
	@echo ">> installing the Node.js example's npm dependencies when its lockfile changed (about 4 minutes the first time: librdkafka is built from source)"
	@cd examples/node-handler && want=$$(sha256sum package-lock.json | cut -d' ' -f1) && \
	if [ "$$(cat node_modules/.lagscale-lock-sha256 2>/dev/null)" != "$$want" ]; then \
		CKJS_LINKING=dynamic npm ci --no-audit --no-fund && printf %s "$$want" > node_modules/.lagscale-lock-sha256; fi

# The stamp is the one internal/testkit.NPMInstall and sdk/node/scripts/install-deps.js write.
.PHONY: node-deps
node-deps: ## Install sdk/node's npm dependencies from its lockfile when they are missing or stale.
	cd sdk/node && node scripts/install-deps.js

.PHONY: bench-node
bench-node: node-deps ## Compare @lagscale/handler with a bare loop on the same client (256 B records, medians of 11 alternated runs).
	go build -o $(BIN)/kfake ./hack/kfake
	cd sdk/node && LAGSCALE_KFAKE=$(BIN)/kfake node bench/ratio.js 200000 11 256

.PHONY: bench-autoscale
bench-autoscale: ## The simulator's randomized family, test split, seeds 1..100, with the honest defaults (capacity not given, reconcile latency 1 s): lagscale against KEDA's defaults, its best of 768 configurations, its frontier and two oracles (about 2.5 CPU-minutes; figures in docs/autoscaling.md).
	go run ./cmd/lagscale sim --family test --seeds 1-100

##@ Build

.PHONY: build
build: ## Build the operator and the CLI into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/manager ./cmd/manager
	go build -o $(BIN)/lagscale ./cmd/lagscale

.PHONY: run
run: manifests ## Run the operator against the current kubeconfig (install the CRDs first: kubectl apply --server-side -f config/crd/bases).
	go run ./cmd/manager --leader-elect=false --log-format text --metrics-bind-address :8443 --health-probe-bind-address :8081

##@ Images

# The images are named as they would be pushed; the chart's default image
# (image.repository and the chart's appVersion) is the operator's name here.
IMAGE_REGISTRY ?= ghcr.io/lagscale
IMAGE_VERSION  ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/lagscale/Chart.yaml)
IMAGES_DIR     ?= $(BIN)/images
# Every file's time is the commit's, so a rebuild of the same commit gives
# the same digest; set SOURCE_DATE_EPOCH to choose another.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_BUILD = cd hack/image && go run . -root $(CURDIR) -version $(IMAGE_VERSION) -revision $(IMAGE_REVISION) -epoch $(SOURCE_DATE_EPOCH)

.PHONY: image
image: ## Build the operator and example handler images as OCI archives in bin/images, with no Docker engine.
	$(IMAGE_BUILD) -pkg ./cmd/manager -binary /manager -name $(IMAGE_REGISTRY)/manager:$(IMAGE_VERSION) -out $(IMAGES_DIR)/lagscale.tar
	$(IMAGE_BUILD) -pkg ./examples/handler -binary /handler -name $(IMAGE_REGISTRY)/example-handler:$(IMAGE_VERSION) -out $(IMAGES_DIR)/example-handler.tar
	@ls -l $(IMAGES_DIR)/lagscale.tar $(IMAGES_DIR)/example-handler.tar

.PHONY: oci-runtime
oci-runtime: ## Install runc from Debian's packages, for the test that runs the images (needs root or sudo).
	@if command -v runc >/dev/null; then runc --version | head -1; else \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends runc; fi

.PHONY: docker-build
docker-build: ## Build the operator image (needs a Docker engine).
	docker build -t $${IMG:-lagscale/manager:dev} .
