# logcap — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
NATSCLI_VERSION := v0.5.0
NATS_SERVER_VERSION := v2.15.2
VICTORIALOGS_VERSION := v1.52.2
CRICTL_VERSION := v1.37.0
# Packages with goroutines and real servers: -race everywhere, a hard upper bound per run.
TEST_TIMEOUT ?= 25m
# A count, not a duration: a -fuzztime duration races Go's fuzz coordinator (go.dev/issue/75804,
# fixed in Go 1.27): the deadline can surface as a failure, "context deadline exceeded",
# with no crasher (CI, FuzzMultiline, go1.26.8). A count has no deadline to race.
FUZZTIME ?= 5000x

.PHONY: all build run test vet fmt-check unit bench soak fuzz tools clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/logcap ./cmd/logcap

# Runs logcap on the example config with a demo log writer (captured lines appear on stdout),
# or with CONFIG= (empty) the built-in default: embedded NATS on 127.0.0.1:4222, data in ./data.
CONFIG ?= examples/logcap.yaml
run: build
ifeq ($(CONFIG),)
	$(BIN)/logcap run
else
	examples/run-demo.sh $(CONFIG)
endif

test: vet fmt-check unit

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' ':!:third_party/**')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit: tools
	PATH=$(BIN):$$PATH $(GO) test -race -timeout $(TEST_TIMEOUT) ./...

# Short fuzzing of every fuzz target (CI runs it); FUZZTIME=1000000x for longer.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

# The micro-benchmarks, then the end-to-end table (internal/cmd/bench: the real binary on 2M
# lines, ceilings measured in the same run; BENCH_FLAGS=-short for a 30 s idle window).
BENCH_FLAGS ?=
bench: tools build
	PATH=$(BIN):$$PATH $(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 60m ./... | tee bench.out
	set -o pipefail; $(GO) run ./internal/cmd/bench -bin $(BIN)/logcap $(BENCH_FLAGS) | tee -a bench.out

# SOAK_FLAGS="-external-nats -nats-every 30s -nats-down 6s": NATS outages longer than a rotation.
SOAK_FLAGS ?=
soak: build
	$(GO) run ./internal/cmd/soak -duration $${SOAK_DURATION:-10m} $(SOAK_FLAGS)

# The nats CLI, for interop tests and for users reading the streams; nats-server, for the
# tests against an external three-node cluster (internal/cluster); victoria-logs, the real log
# store the loki, elasticsearch and http sinks are tested against (internal/vlogs).
# crictl drives the private containerd of the Kubernetes source's tests (internal/critest).
# otelcol, the OpenTelemetry Collector the otlp sink and source are tested against
# (internal/otelcol), built from tools/otelcol: its own module, so logcap's go.mod does not
# carry the Collector's dependency tree.
tools: $(BIN)/nats $(BIN)/nats-server $(BIN)/victoria-logs $(BIN)/crictl $(BIN)/otelcol
$(BIN)/nats:
	GOBIN=$(BIN) $(GO) install github.com/nats-io/natscli/nats@$(NATSCLI_VERSION)
$(BIN)/nats-server:
	GOBIN=$(BIN) $(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)
$(BIN)/victoria-logs:
	GOBIN=$(BIN) $(GO) install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$(VICTORIALOGS_VERSION)
$(BIN)/crictl:
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION)
$(BIN)/otelcol: tools/otelcol/main.go tools/otelcol/go.mod tools/otelcol/go.sum
	cd tools/otelcol && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/otelcol .

clean:
	rm -rf $(BIN) data bench.out
