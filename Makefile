# devicehooks: webhooks in, MQTT commands out to signage players.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GO      ?= go
BIN     := bin/devicehooks

.PHONY: run build test test-short lint bench bench-short pgo fuzz clean

## run: build and serve with the embedded defaults (SQLite file + embedded MQTT broker) in ./data
run: build
	@mkdir -p data
	./$(BIN) serve --db data/devicehooks.db

## build: compile the binary into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/devicehooks

## test: vet, format check, staticcheck, and every test with the race detector (needs mosquitto, postgresql, chromium, systemd-analyze: see .ci/run)
test: lint
	$(GO) test -race -count=1 -timeout 30m ./...

## test-short: the tests without the slow end-to-end ones
test-short:
	$(GO) test -count=1 -short ./...

## bench: the full end-to-end benchmark (about 5 minutes; the Mosquitto half needs mosquitto); see docs/benchmark.md
bench:
	$(GO) run ./cmd/bench

## bench-short: a few seconds per phase; fails if any accepted trigger is lost or duplicated (CI runs it as a test too)
bench-short:
	$(GO) run ./cmd/bench --short

## pgo: refresh cmd/devicehooks/default.pgo, the profile go build optimises the server with (about 3 minutes; see docs/benchmark.md)
pgo:
	./scripts/pgo.sh

## fuzz: run every fuzz target in turn for FUZZTIME each (default 60s; CI uses 5s)
FUZZTIME ?= 60s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

## lint: go vet, gofmt and staticcheck (a pinned version, fetched through the module proxy)
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
