//go:build itest

// Package itest runs holdd against real btcd and lnd binaries on regtest.
// TestMain sets up one network, shared by every test: btcd, three lnd nodes
// S (sender) -> L (the LSP, lnd with requireinterceptor and feature 153)
// -> P (recipient), and holdd attached to L. Tests must leave it as they
// found it: every payment they start has ended and nothing is held when they
// return (Net checks this after each test).
//
// The binaries come from scripts/build-deps.sh's cache; holdd is built from
// ./cmd/holdd. Run with:
//
//	go test -tags itest -count=1 -timeout 40m -v ./itest/...
package itest
