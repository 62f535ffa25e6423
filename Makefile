# wardgate: `make demo` runs the main job, `make test` the tests.
GO       ?= go
BIN      := bin/wardgate
PKGS     := ./...
FUZZTIME ?= 20s
# PKCS#11 (hardware security modules) goes through cosign's pkcs11key
# package, which needs cgo and this build tag (as cosign's own
# pivkey-pkcs11key builds do). A C compiler (gcc) is all it needs.
TAGS     ?= pkcs11key
export CGO_ENABLED = 1
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/wardgate/wardgate/internal/buildinfo.version=$(VERSION)
GOBUILDFLAGS := -tags '$(TAGS)'

.PHONY: build test demo bench fixtures conformance vet fuzz clean

build: $(BIN)

$(BIN): $(shell find . -name '*.go' -not -path './bench/out/*') go.mod go.sum $(shell find policy/rego -name '*.rego' 2>/dev/null)
	$(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/wardgate

vet:
	$(GO) vet $(GOBUILDFLAGS) $(PKGS)

test: build
	$(GO) vet $(GOBUILDFLAGS) $(PKGS)
	$(GO) test $(GOBUILDFLAGS) -count=1 $(PKGS)

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

clean:
	rm -rf bin
