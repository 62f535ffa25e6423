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

.PHONY: build test demo console console-screenshots bench soak fixtures conformance vet fuzz clean

build: $(BIN)

$(BIN): $(shell find . -name '*.go' -not -path './bench/out/*') go.mod go.sum $(shell find policy/rego -name '*.rego' 2>/dev/null)
	$(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/wardgate

vet:
	$(GO) vet $(GOBUILDFLAGS) $(PKGS)

test: build
	$(GO) vet $(GOBUILDFLAGS) $(PKGS)
	WARDGATE=$(CURDIR)/$(BIN) $(GO) test $(GOBUILDFLAGS) -count=1 $(PKGS)

conformance: build
	WARDGATE=$(BIN) scripts/conformance.sh

fixtures:
	$(GO) run ./fixtures/gen -out fixtures/testdata
	$(GO) run ./fixtures/fleet/gen -out fixtures/fleet/testdata

demo: build
	scripts/demo.sh

# The demo story in the web console (docs/console.md), until Ctrl-C.
CONSOLE_LISTEN ?= 127.0.0.1:8080
console: build
	$(BIN) serve --demo --listen $(CONSOLE_LISTEN) --log-level warn

# Rewrite docs/console/*.png with the browser test's screenshots.
console-screenshots: build
	WARDGATE=$(CURDIR)/$(BIN) WARDGATE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run TestBrowserDemoStory ./console/

bench: build
	bench/run.sh

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# An hour under a bounded mix of work and attack (SOAK_DURATION=5m for less).
soak: build
	WARDGATE=$(BIN) scripts/soak.sh

clean:
	rm -rf bin
