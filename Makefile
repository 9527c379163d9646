# Weir — common tasks. `make test` is what CI runs (.ci/run).
GO      ?= go
PKGS    ?= ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/weirhq/weir/internal/cli.Version=$(VERSION)

.PHONY: build run test test-race lint bench bench-go fuzz clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/weir ./cmd/weir

run: ## the quickstart demo on the embedded defaults
	$(GO) run ./cmd/weir serve

STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.6.1

test: lint ## lint, then every test with the race detector (needs PostgreSQL on 127.0.0.1:5432)
	$(GO) test -race -shuffle=on -count=1 -timeout 20m $(PKGS)

test-race: test

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

bench: ## the figures in docs/benchmarks.md (medians of 3 runs; about 15 minutes)
	scripts/bench.sh 3

bench-go: ## the Go micro-benchmarks
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/buffer/embedded ./internal/sink/... ./internal/format

FUZZTIME ?= 30s

fuzz: ## each parser's fuzzer for FUZZTIME (30 s; CI runs 20000 inputs each)
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./internal/message
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./internal/format
	$(GO) test -run '^$$' -fuzz FuzzFastSchema -fuzztime $(FUZZTIME) ./internal/format
	$(GO) test -run '^$$' -fuzz FuzzXMLToJSON -fuzztime $(FUZZTIME) ./internal/format
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./internal/format/libxml
	$(GO) test -run '^$$' -fuzz FuzzTransform -fuzztime $(FUZZTIME) ./internal/format/libxml
	$(GO) test -run '^$$' -fuzz FuzzDecodeRun -fuzztime $(FUZZTIME) ./internal/state

clean:
	rm -rf bin weir-data
