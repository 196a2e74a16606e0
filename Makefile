GO ?= go
LND_VERSION ?= v0.21.3-beta
# The older lnd the core itests also run L (the LSP) on, through holdd's
# custom-message transport.
LSP_LND_OLD ?= v0.20.2-beta
CORE_ITESTS := ^(TestSmoke|TestHoldAndRelease|TestPassThrough|TestForgedReleasesReleaseNothing|TestFailBackBeforeAutoFail|TestAdmissionPublicChannelNotHeld|TestInterceptorBlackholed)$$
RECIPIENT_ITESTS := ^(TestSmoke|TestAsyncRoles|TestAsyncRolesReleasedOnce|TestAsyncRolesRecipientDown|TestAsyncOfferClient)$$
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

# Builds (or reuses) the pinned lnds and btcd in $(HOLDD_CACHE); btcd is the
# one the first lnd's go.mod pins.
deps:
	scripts/build-deps.sh $(LND_VERSION) $(LSP_LND_OLD)

# Integration tests against real btcd and lnd on regtest: the whole suite
# with every node on $(LND_VERSION), then the core tests with L on
# $(LSP_LND_OLD), then the role tests with P (the recipient) on
# $(LSP_LND_OLD).
itest: deps
	$(GO) test -tags itest -count=1 -timeout $(ITEST_TIMEOUT) -v ./itest/...
	HOLDD_ITEST_LSP_LND=$(LSP_LND_OLD) $(GO) test -tags itest -count=1 \
		-timeout $(ITEST_TIMEOUT) -v -run '$(CORE_ITESTS)' ./itest
	HOLDD_ITEST_RECIPIENT_LND=$(LSP_LND_OLD) $(GO) test -tags itest \
		-count=1 -timeout $(ITEST_TIMEOUT) -v \
		-run '$(RECIPIENT_ITESTS)' ./itest

test: unit itest

# The README's main job: one async payment end to end on a private regtest
# network (btcd, lnd S -> L -> P, holdd on L), printed as a timeline. The
# first run builds lnd $(LND_VERSION) and btcd (about 8 minutes), then
# compiles the demo and holdd (a minute or two).
.PHONY: demo
demo:
	scripts/build-deps.sh $(LND_VERSION)
	@echo "demo: compiling (the first run takes a minute or two)" >&2
	$(GO) run -tags itest ./itest/demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then \
		echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags itest ./itest/...
	$(GO) vet -tags 'itest bench' ./itest/...

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

# Go benchmarks (no lnd), then the end-to-end ones through real lnd on the
# itest network (TestBenchE2E: pass-through overhead of holdd against no
# interceptor and a minimal one, and release latency). Each prints a table
# that replaces the one between its markers in docs/benchmarks.md.
BENCH_E2E_TIMEOUT ?= 15m

# bench_insert replaces what docs/benchmarks.md has between
# <!-- $(2):START --> and <!-- $(2):END --> with the file $(1).
define bench_insert
	@awk -v file=$(1) -v start='<!-- $(2):START -->' -v end='<!-- $(2):END -->' \
		'BEGIN { while ((getline l < file) > 0) t = t l "\n" } \
		$$0 == start { print; printf "%s", t; skip = 1; next } \
		$$0 == end { skip = 0 } !skip' docs/benchmarks.md \
		> bin/benchmarks.md && mv bin/benchmarks.md docs/benchmarks.md
endef

.PHONY: bench
bench:
	mkdir -p bin && scripts/bench.sh | tee bin/bench.md
	$(call bench_insert,bin/bench.md,BENCH)
	scripts/build-deps.sh $(LND_VERSION)
	rm -f bin/bench-e2e.md
	HOLDD_BENCH_E2E_OUT=$(CURDIR)/bin/bench-e2e.md $(GO) test \
		-tags 'itest bench' -run '^TestBenchE2E$$' -count=1 \
		-timeout $(BENCH_E2E_TIMEOUT) -v ./itest/ 2>&1 | tee bin/bench-e2e.log
	@test -s bin/bench-e2e.md || { echo "TestBenchE2E failed: see" \
		"bin/bench-e2e.log"; exit 1; }
	$(call bench_insert,bin/bench-e2e.md,E2E)

clean:
	rm -rf bin
