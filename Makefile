# Warren — one binary, one Makefile.
#
#   sudo make demo        set up this Debian machine and run a single-node cluster serving `web`
#   sudo make ci          run every test exactly as CI does (.ci/run calls it)
#
SHELL       := /bin/bash
GO          ?= go
BIN         := build/warren
DATA_DIR    ?= /var/lib/warren
DEMO_IMAGE  := build/demo.tar
APT_PKGS    := containerd runc iproute2 iptables clang llvm libbpf-dev bpftool iperf3 wrk dnsutils prometheus curl openssh-server sshfs mmdebstrap docker-registry
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)

.PHONY: all build test kernel-test fuzz fuzz-smoke reliability reliability-smoke reliability-ci bench bench-smoke sim sim-smoke monitoring-check generate generate-check lint hygiene demo-image demo demo-clean deps release ci containerd

all: build

## build: the warren binary, and wrn / warren-cni links to it
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/warren
	ln -sf warren build/wrn
	ln -sf warren build/warren-cni

## test: unit tests (no root needed)
test:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /kernel-tests/ -e /bench/)

## kernel-test: tests against the real kernel, containerd and WireGuard (root); the reliability matrix
## under kernel-tests/reliability has targets of its own (below)
kernel-test: build demo-image
	WARREN_BIN=$(CURDIR)/$(BIN) WARREN_DEMO_IMAGE=$(CURDIR)/$(DEMO_IMAGE) \
		$(GO) test -count=1 -p 1 -timeout 45m $$($(GO) list ./kernel-tests/... | grep -v /kernel-tests/reliability)

## fuzz: every native fuzz target (func FuzzXxx(f *testing.F) in any test file) for FUZZTIME each, FUZZJOBS
## targets at a time (the cores shared out among them). New interesting inputs are written to the package's
## testdata/fuzz/FuzzXxx, which go test replays as seeds: commit them. A crash leaves its input there too; fix
## the product and keep the input as the regression seed.
FUZZTIME    ?= 2m
FUZZCORPUS  ?= 1
FUZZJOBS    ?= 1
fuzz:
	GO=$(GO) kernel-tests/reliability/fuzz.sh $(FUZZTIME) $(FUZZCORPUS) $(FUZZJOBS)

## reliability: the reliability matrix (root): fuzzing, then partitions and splits (3 managers, and 5 split
## 2|3 in the full profile only), a flapping link, leader kills, whole-cluster kills (also in the middle of a
## snapshot), a full disk, the certificate lifecycle, a revoked node, the secrets marker grep and a soak
## (WARREN_SOAK_MINUTES of churn, default 10, then 10 idle) on namespace hosts; each test prints one summary
## line, then the table.
## reliability-smoke: the short profile (10 s per fuzz target, 3 kills instead of 20, a 40 s soak).
RELIABILITY_ENV = WARREN_BIN=$(CURDIR)/$(BIN) WARREN_DEMO_IMAGE=$(CURDIR)/$(DEMO_IMAGE)
reliability: build demo-image
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME)
	@set -o pipefail; $(RELIABILITY_ENV) WARREN_RELIABILITY_PROFILE=full \
		$(GO) test -count=1 -p 1 -timeout 75m -v ./kernel-tests/reliability/... | tee build/reliability.log | grep -v '^=== \|^    --- \|^--- PASS'
## fuzz-smoke: every fuzz target for 30 s, two at a time with a core each (what CI runs).
fuzz-smoke:
	$(MAKE) fuzz FUZZTIME=30s FUZZCORPUS=0 FUZZJOBS=2
reliability-smoke: build demo-image
	$(MAKE) fuzz FUZZTIME=10s FUZZCORPUS=0
	@set -o pipefail; $(RELIABILITY_ENV) WARREN_RELIABILITY_PROFILE=short \
		$(GO) test -count=1 -p 1 -timeout 15m -v ./kernel-tests/reliability/... | tee build/reliability.log | grep -v '^=== \|^    --- \|^--- PASS'
## reliability-ci: the matrix's kernel rows CI runs (root), short profile, without the fuzzing (fuzz-smoke
## runs it) and without the T6 soak, whose short run alone takes longer than CI's budget for the matrix.
reliability-ci: build demo-image
	@set -o pipefail; $(RELIABILITY_ENV) WARREN_RELIABILITY_PROFILE=short \
		$(GO) test -count=1 -p 1 -timeout 10m -v -run 'TestFaults|TestFullDisk|TestSettleUnknown' ./kernel-tests/reliability/... | tee build/reliability-ci.log | grep -v '^=== \|^    --- \|^--- PASS'

## bench: full benchmarks (root); bench-smoke: the short run CI does
bench: build demo-image
	WARREN_BIN=$(CURDIR)/$(BIN) WARREN_DEMO_IMAGE=$(CURDIR)/$(DEMO_IMAGE) $(GO) test -count=1 -p 1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/...
bench-smoke: build demo-image
	WARREN_BENCH_SMOKE=1 WARREN_BIN=$(CURDIR)/$(BIN) WARREN_DEMO_IMAGE=$(CURDIR)/$(DEMO_IMAGE) $(GO) test -count=1 -p 1 -run '^$$' -bench . -benchtime 1x -timeout 10m ./bench/...

## sim: the scale simulator (bench/sim) — three manager processes and simulated nodes running the real
## agent over mTLS — full profile: 500 and 2,000 nodes, 10,000 → 50,000 tasks (SIM_NODES=5000 adds a
## 5,000-node run). sim-smoke is the 200-node profile bench-smoke (so CI) runs. Profiles of the leader
## under load land in build/sim-pprof. SIM_PROFILE=full-500 (or full-2000) runs one size alone.
SIM_NODES ?=
SIM_PROFILE ?= full
sim: build
	@mkdir -p build/sim-pprof
	WARREN_SIM_PROFILE=$(SIM_PROFILE) WARREN_SIM_NODES=$(SIM_NODES) WARREN_SIM_PPROF=$(CURDIR)/build/sim-pprof WARREN_BIN=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -run '^$$' -bench BenchmarkSim -benchtime 1x -timeout 90m -v ./bench/sim/
sim-smoke: build
	@mkdir -p build/sim-pprof
	WARREN_SIM_PROFILE=smoke WARREN_SIM_PPROF=$(CURDIR)/build/sim-pprof WARREN_BIN=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -run '^$$' -bench BenchmarkSim -benchtime 1x -timeout 10m ./bench/sim/

## monitoring-check: the alert rules parse and pass their unit tests (docs/monitoring)
monitoring-check:
	cd docs/monitoring && promtool check rules warren-alerts.yml && promtool test rules warren-alerts-test.yml

## generate: regenerate bpf2go output (clang 14); generate-check fails if the committed output differs
generate:
	$(GO) generate ./dataplane/...
generate-check: generate
	git diff --exit-code -- dataplane/ bpf/ || (echo "committed bpf2go output differs from a fresh generation: run make generate and commit" >&2; exit 1)

## hygiene: go.mod tidy, and no build output in git (no tracked file over 1 MiB but bpf2go objects)
hygiene:
	@t=$$(mktemp -d); cp go.mod go.sum $$t/; $(GO) mod tidy; \
	if ! cmp -s go.mod $$t/go.mod || ! cmp -s go.sum $$t/go.sum; then diff -u $$t/go.mod go.mod; \
		cp $$t/go.mod $$t/go.sum .; rm -rf $$t; echo "go.mod/go.sum are not tidy: run go mod tidy and commit" >&2; exit 1; fi; rm -rf $$t
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 1048576 && $$2 !~ /_bpfel\.o$$$$/ {print $$2}'); \
	if [ -n "$$big" ]; then echo "tracked files over 1 MiB (build output does not belong in git):" >&2; echo "$$big" >&2; exit 1; fi

## lint: gofmt, go vet, a darwin build (the proxy dataplane must build there), the alert rules
lint: monitoring-check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting" >&2; exit 1)
	$(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) build ./...

## demo-image: the demo HTTP server packed as an OCI archive (no registry, no docker)
demo-image: build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o build/demo-server ./cmd/demo-server
	$(BIN) image pack --binary build/demo-server --name warren/demo:v1 -o $(DEMO_IMAGE)
	WARREN_DEMO_VERSION=v2 $(BIN) image pack --binary build/demo-server --name warren/demo:v2 --env WARREN_DEMO_VERSION=v2 -o build/demo-v2.tar
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o build/demo-rows ./cmd/demo-rows
	for v in v1 v2; do $(BIN) image pack --binary build/demo-rows --name warren/rows:$$v --env WARREN_DEMO_VERSION=$$v -o build/rows-$$v.tar || exit 1; done

## deps: install what Warren and its tests need on Debian (idempotent)
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	$(GO) mod download

## containerd: start the system containerd if nothing answers on its socket
containerd:
	@if ! ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; then \
		echo "starting containerd"; mkdir -p /run/containerd; \
		setsid containerd >/var/log/warren-containerd.log 2>&1 < /dev/null & \
		for i in $$(seq 50); do ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1 && break; sleep 0.2; done; fi

## demo: a single-node cluster serving `web` (3 replicas, port 8080) — safe to re-run
demo: deps build demo-image containerd
	install -m 0755 $(BIN) /usr/local/bin/warren && ln -sf warren /usr/local/bin/wrn
	@if ! warren cluster info >/dev/null 2>&1; then \
		warren cluster init --detach --data-dir $(DATA_DIR); fi
	warren image load -i $(DEMO_IMAGE)
	@warren service inspect web >/dev/null 2>&1 || \
		warren service create web --image warren/demo:v1 --replicas 3 --port 8080:80 --health-http /healthz
	warren service ls
	@for i in 1 2 3 4 5 6; do curl -s --max-time 2 localhost:8080 | head -1; done

## demo-clean: stop the demo cluster and remove its state
demo-clean:
	-warren service rm web
	-warren cluster leave --force --data-dir $(DATA_DIR)
	-@if [ -f $(DATA_DIR)/warren.pid ]; then kill $$(cat $(DATA_DIR)/warren.pid) 2>/dev/null; fi
	rm -rf $(DATA_DIR)

## release: cross-builds (linux amd64/arm64/armv7, macOS with the proxy dataplane)
release:
	@for t in linux/amd64 linux/arm64 linux/arm/7 darwin/arm64 darwin/amd64; do \
		os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; [ "$$arm" = "$$rest" ] && arm=""; \
		out=build/release/warren-$$os-$$arch$${arm:+v$$arm}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/warren || exit 1; \
		printf '%-40s %s\n' $$out "$$(du -h $$out | cut -f1)"; done

## ci: everything CI runs, in order (root)
ci: deps hygiene lint generate-check test fuzz-smoke kernel-test reliability-ci bench-smoke
	@echo "ci: all stages passed"
