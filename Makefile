GO ?= go
LND_VERSION ?= v0.21.2-beta
ITEST_TIMEOUT ?= 40m
FUZZTIME ?= 30s
HOLDD_CACHE ?= $(HOME)/.cache/holdd
export HOLDD_CACHE

PROTOC_GEN_GO_VERSION := v1.36.10
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

.PHONY: all build unit itest test lint fmt deps rpc fuzz clean

all: build

build:
	$(GO) build -o bin/holdd ./cmd/holdd
	@if [ -d cmd/holdcli ] && ls cmd/holdcli/*.go >/dev/null 2>&1; then \
		$(GO) build -o bin/holdcli ./cmd/holdcli; fi

# Unit tests: no lnd, no network. Fuzz targets run their seed corpus only.
unit:
	$(GO) test -race -count=1 ./...

# Builds (or reuses) the pinned lnd and btcd in $(HOLDD_CACHE).
deps:
	scripts/build-deps.sh $(LND_VERSION)

# Integration tests against real btcd and lnd on regtest.
itest: deps
	$(GO) test -tags itest -count=1 -timeout $(ITEST_TIMEOUT) -v ./itest/...

test: unit itest

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then \
		echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags itest ./itest/...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Regenerates holdrpc from holdrpc.proto (needs Debian's protobuf-compiler).
rpc:
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/bin:$$PATH holdrpc/gen.sh

# Runs every fuzz target beyond its seed corpus for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin
