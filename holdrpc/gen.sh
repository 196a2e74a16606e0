#!/usr/bin/env bash
# Regenerates the Go code for holdrpc.proto. Needs protoc (Debian
# protobuf-compiler) and the generator versions pinned in the Makefile.
set -euo pipefail
cd "$(dirname "$0")"
protoc --go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	holdrpc.proto
