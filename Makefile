# wardgate: `make demo` runs the main job, `make test` the tests.
GO       ?= go
BIN      := bin/wardgate
PKGS     := ./...
FUZZTIME ?= 20s

.PHONY: build test demo bench soak fixtures conformance vet fuzz clean

build: $(BIN)

$(BIN): $(shell find . -name '*.go' -not -path './bench/out/*') go.mod go.sum $(shell find policy/rego -name '*.rego' 2>/dev/null)
	$(GO) build -o $(BIN) ./cmd/wardgate

vet:
	$(GO) vet $(PKGS)

test: build
	$(GO) vet $(PKGS)
	$(GO) test -count=1 $(PKGS)

conformance: build
	WARDGATE=$(BIN) scripts/conformance.sh

fixtures:
	$(GO) run ./fixtures/gen -out fixtures/testdata
	$(GO) run ./fixtures/fleet/gen -out fixtures/fleet/testdata

demo: build
	scripts/demo.sh

bench: build
	bench/run.sh

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# An hour under a bounded mix of work and attack (SOAK_DURATION=5m for less).
soak: build
	scripts/soak.sh

clean:
	rm -rf bin
