#!/usr/bin/env bash
# Builds the pinned lnd and btcd binaries that the itests and the demo run, into
# a cache outside the repository keyed by version, and reuses them when present.
#
# Usage: scripts/build-deps.sh [lnd-version ...]
# Prints nothing but progress on stderr; the binaries land in
#   $HOLDD_CACHE/lnd-<version>/{lnd,lncli}
#   $HOLDD_CACHE/btcd-<version>/{btcd,btcctl}
set -euo pipefail

HOLDD_CACHE=${HOLDD_CACHE:-$HOME/.cache/holdd}
LND_VERSIONS=("$@")
if [ ${#LND_VERSIONS[@]} -eq 0 ]; then
	LND_VERSIONS=(v0.21.3-beta)
fi
# The tags of lnd's release build that holdd depends on: signrpc for
# DeriveSharedKey, peersrpc, routerrpc (always built) for the interceptor.
LND_TAGS="signrpc walletrpc chainrpc invoicesrpc peersrpc routerrpc"

mkdir -p "$HOLDD_CACHE"

build_lnd() {
	local version=$1
	local out="$HOLDD_CACHE/lnd-$version"
	if [ -x "$out/lnd" ] && [ -x "$out/lncli" ]; then
		echo "lnd $version: cached in $out" >&2
		return
	fi
	echo "lnd $version: downloading module" >&2
	local dir
	dir=$(cd "$HOLDD_CACHE" && GOFLAGS=-mod=mod go mod download -json \
		"github.com/lightningnetwork/lnd@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$dir" ]; then
		echo "lnd $version: module not found on the Go module proxy" >&2
		exit 1
	fi
	echo "lnd $version: building (several minutes on 2 cores)" >&2
	local commit
	commit="${version}"
	local tmp="$out.tmp"
	rm -rf "$tmp" && mkdir -p "$tmp"
	(cd "$dir" && CGO_ENABLED=0 go build -trimpath -tags="$LND_TAGS" \
		-ldflags "-X github.com/lightningnetwork/lnd/build.Commit=$commit" \
		-o "$tmp/lnd" ./cmd/lnd)
	(cd "$dir" && CGO_ENABLED=0 go build -trimpath -tags="$LND_TAGS" \
		-o "$tmp/lncli" ./cmd/lncli)
	rm -rf "$out" && mv "$tmp" "$out"
	echo "lnd $version: built into $out" >&2
}

build_btcd() {
	# btcd is pinned to the version lnd's own go.mod requires.
	local lnd_version=$1
	local dir
	dir=$(cd "$HOLDD_CACHE" && GOFLAGS=-mod=mod go mod download -json \
		"github.com/lightningnetwork/lnd@$lnd_version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	local version
	version=$(awk '$1 == "github.com/btcsuite/btcd" {print $2; exit}' "$dir/go.mod")
	local out="$HOLDD_CACHE/btcd-$version"
	if [ -x "$out/btcd" ] && [ -x "$out/btcctl" ]; then
		# The itest harness finds btcd through this link; keep it
		# pointing at the version the first lnd pins.
		ln -sfn "btcd-$version" "$HOLDD_CACHE/btcd-current"
		echo "btcd $version: cached in $out" >&2
		return
	fi
	echo "btcd $version: building" >&2
	local tmp="$out.tmp"
	rm -rf "$tmp" && mkdir -p "$tmp"
	GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod go install \
		"github.com/btcsuite/btcd@$version" \
		"github.com/btcsuite/btcd/cmd/btcctl@$version"
	rm -rf "$out" && mv "$tmp" "$out"
	ln -sfn "btcd-$version" "$HOLDD_CACHE/btcd-current"
	echo "btcd $version: built into $out" >&2
}

for v in "${LND_VERSIONS[@]}"; do
	build_lnd "$v"
done
build_btcd "${LND_VERSIONS[0]}"
